%% Streams from Python (docs/streams.md): a task whose function returns a
%% generator, an async generator or another lazy iterable flows to the
%% process that started it, item by item, with credit-based flow control.
%%
%% The process that starts a stream owns it: items go to it alone (the
%% stream reference is its alias, as a task's reply is routed), and its
%% death makes the worker cancel the stream, which closes the generator
%% in Python (its `finally` blocks and `async with` exits run). The port
%% advances the generator only while it has credit: at most `window`
%% items are ever on their way or waiting in the consumer.
%%
%% Pull mode (the default): next/1,2, to_list/1,2 and foreach/2 take the
%% items; credit is granted back as they are taken, half a window at a
%% time. Active mode (`mode => active`): the owner receives
%% `{py_stream, Ref, {data, Item}}` messages, at most `window` of them
%% unacknowledged, and grants more with ack/2; the stream ends with
%% `{py_stream, Ref, done}` or `{py_stream, Ref, {error, Reason}}`.
-module(py_stream).

%% API.
-export([next/1]).
-export([next/2]).
-export([ack/2]).
-export([to_list/1]).
-export([to_list/2]).
-export([foreach/2]).
-export([cancel/1]).

%% Internal exports, for py_event_loop and py_event_loop_pool.
-export([start/6]).
-export([check_options/1]).

-type stream() :: reference().
-type mode() :: pull | active.
-type options() :: #{kwargs => py_event_loop:kwargs(),
                     timeout => timeout(),
                     idle_timeout => timeout(),
                     window => pos_integer(),
                     batch => pos_integer(),
                     mode => mode()}.
-type reason() :: timeout | idle_timeout | cancelled | unknown_stream
                | {bad_stream, term()} | {atom_limit, pos_integer()}
                | {worker_down, term()} | py_event_loop:reason().
-type next() :: {ok, term()} | done | {error, reason()}.
-export_type([stream/0, mode/0, options/0, reason/0, next/0]).

%% A pull stream's state, in its owner's process dictionary.
-record(pull, {
    stream :: pyport_calls:call() | undefined,
    %% Items received and not yet taken, in order.
    buf = [] :: list(),
    %% Items taken since credit was last granted, and how many make a grant.
    taken = 0 :: non_neg_integer(),
    grant_every :: pos_integer(),
    %% The whole stream's deadline (monotonic ms) or infinity.
    deadline :: integer() | infinity
}).

-define(KEY(Ref), {?MODULE, Ref}).
-define(DEFAULT_WINDOW, 16).
-define(DEFAULT_BATCH, 1024).
-define(DEFAULT_NEXT_MS, 5000).
%% How long starting a stream may wait for a restarting loop or a full
%% port.
-define(SUBMIT_MS, 5000).

%% API.

%% The next item, waiting at most 5 s for it.
-spec next(stream()) -> next().
next(Ref) ->
    next(Ref, ?DEFAULT_NEXT_MS).

%% The next item. A wait that runs out returns `{error, timeout}` and
%% leaves the stream open (call again, or cancel it); the stream's own
%% `timeout`, once passed, cancels it. `done` and `{error, _}` end the
%% stream: a later call returns `{error, unknown_stream}`.
-spec next(stream(), timeout()) -> next().
next(Ref, Timeout) when is_reference(Ref) ->
    Wait = pyport_task:check_timeout(Timeout),
    case get(?KEY(Ref)) of
        #pull{buf = [Item | Rest]} = S ->
            {ok, Item, S1} = take(Ref, Item, S#pull{buf = Rest}),
            put(?KEY(Ref), S1),
            {ok, Item};
        #pull{} = S ->
            wait(Ref, S, pyport_calls:deadline(Wait));
        undefined ->
            {error, unknown_stream}
    end;
next(Ref, _) ->
    error({badarg, {stream, Ref}}).

%% Active mode: grants K more items. Granting credit for a stream that
%% has ended (or is not the caller's) does nothing.
-spec ack(stream(), pos_integer()) -> ok.
ack(Ref, K) when is_reference(Ref), is_integer(K), K > 0 ->
    case pyport_calls:find_stream(Ref) of
        {ok, Loop} ->
            _ = pyport_calls:grant(Ref, K, Loop),
            ok;
        error ->
            ok
    end;
ack(Ref, K) ->
    error({badarg, {ack, Ref, K}}).

%% Every item of a pull stream, waiting at most 5 s for each.
-spec to_list(stream()) -> {ok, list()} | {error, reason()}.
to_list(Ref) ->
    to_list(Ref, ?DEFAULT_NEXT_MS).

%% Every item, waiting at most ItemTimeout for each; a wait that runs out
%% cancels the stream and returns `{error, timeout}`.
-spec to_list(stream(), timeout()) -> {ok, list()} | {error, reason()}.
to_list(Ref, ItemTimeout) ->
    collect(Ref, ItemTimeout, []).

%% Calls Fun on each item in order (waiting at most 5 s for each). Should
%% Fun raise, the stream is cancelled (its generator closed) first.
-spec foreach(stream(), fun((term()) -> term())) -> ok | {error, reason()}.
foreach(Ref, Fun) when is_function(Fun, 1) ->
    case next(Ref) of
        {ok, Item} ->
            try Fun(Item)
            catch
                Class:Reason:Stack ->
                    ok = cancel(Ref),
                    erlang:raise(Class, Reason, Stack)
            end,
            foreach(Ref, Fun);
        done ->
            ok;
        {error, timeout} ->
            ok = cancel(Ref),
            {error, timeout};
        {error, _} = Error ->
            Error
    end;
foreach(_, Fun) ->
    error({badarg, {function, Fun}}).

%% Closes the stream: Python closes its generator (its `finally` blocks
%% run), and nothing more of it reaches the caller, whose mailbox is
%% cleared of the stream's messages. Safe on an ended or unknown stream.
-spec cancel(stream()) -> ok.
cancel(Ref) when is_reference(Ref) ->
    case erase(?KEY(Ref)) of
        #pull{stream = undefined} ->
            ok;
        #pull{stream = Stream} ->
            pyport_calls:cancel(Ref, Stream);
        undefined ->
            case pyport_calls:find_stream(Ref) of
                {ok, Loop} -> pyport_calls:cancel(Ref, Loop);
                error -> ok
            end
    end,
    forget(Ref);
cancel(Ref) ->
    error({badarg, {stream, Ref}}).

%% Starts a stream of Module.Func(*Args, **Kwargs) on loop Index, owned by
%% the caller. Always returns a reference: a stream that cannot start
%% reports why as its first and last message.
-spec start(pyport_calls:loop_index(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs(), options()) -> stream().
start(Index, Module, Func, Args, Kwargs, Opts) ->
    Mode = maps:get(mode, Opts, pull),
    Window = maps:get(window, Opts, ?DEFAULT_WINDOW),
    Timeout = maps:get(timeout, Opts, infinity),
    Request = {stream, Module, Func, Args, Kwargs, wire_opts(Opts, Window), Mode, Window},
    case pyport_calls:submit(Index, Request, pyport_calls:deadline(?SUBMIT_MS)) of
        {ok, Ref, Stream} ->
            remember(Ref, Mode, Stream, Window, Timeout),
            Ref;
        {error, Reason} ->
            Ref = make_ref(),
            remember(Ref, Mode, undefined, Window, Timeout),
            self() ! {py_stream, Ref, {error, Reason}},
            Ref
    end.

%% Checks the options of stream/4,5; raises {badarg, _} for the first bad
%% one (an unknown key included, so that a misspelling is not ignored).
-spec check_options(term()) -> {py_event_loop:kwargs(), options()}.
check_options(Opts) when is_map(Opts) ->
    maps:foreach(fun check_option/2, Opts),
    {maps:get(kwargs, Opts, #{}), maps:remove(kwargs, Opts)};
check_options(Opts) ->
    error({badarg, {options, Opts}}).

%% Internal.

check_option(kwargs, Kw) when is_map(Kw) -> ok;
check_option(Key, T) when Key =:= timeout; Key =:= idle_timeout ->
    _ = pyport_task:check_timeout(T), ok;
check_option(Key, N) when (Key =:= window orelse Key =:= batch),
                          is_integer(N), N > 0, N =< 16#7fffffff -> ok;
check_option(mode, M) when M =:= pull; M =:= active -> ok;
check_option(Key, Value) -> error({badarg, {option, Key, Value}}).

%% What Python gets: the window, the batch bound, the deadlines.
wire_opts(Opts, Window) ->
    Base = #{window => Window, batch => maps:get(batch, Opts, ?DEFAULT_BATCH)},
    Base1 = case maps:get(timeout, Opts, infinity) of
                infinity -> Base;
                T -> Base#{deadline_ms => T}
            end,
    case maps:get(idle_timeout, Opts, infinity) of
        infinity -> Base1;
        I -> Base1#{idle_ms => I}
    end.

remember(Ref, pull, Stream, Window, Timeout) ->
    put(?KEY(Ref), #pull{stream = Stream, grant_every = max(1, Window div 2),
                         deadline = pyport_calls:deadline(Timeout)});
remember(_Ref, active, _Stream, _Window, _Timeout) ->
    %% Nothing to keep (an active stream's owner need not call anything
    %% at its end): ack/2 and cancel/1 find the stream in its loop.
    ok.

%% Waits for the next batch or the end, until the call's Deadline or the
%% stream's own, whichever is first.
wait(Ref, #pull{deadline = StreamDeadline} = S, CallDeadline) ->
    Until = pyport_calls:earliest(CallDeadline, StreamDeadline),
    receive
        {py_stream, Ref, {batch, [Item | Rest]}} ->
            {ok, Item, S1} = take(Ref, Item, S#pull{buf = Rest}),
            put(?KEY(Ref), S1),
            {ok, Item};
        {py_stream, Ref, {batch, []}} ->
            wait(Ref, S, CallDeadline);
        {py_stream, Ref, done} ->
            ended(Ref),
            done;
        {py_stream, Ref, {error, _} = Error} ->
            ended(Ref),
            Error;
        {'DOWN', Ref, process, _, Reason} ->
            ended(Ref),
            {error, {worker_down, Reason}}
    after pyport_calls:after_ms(Until) ->
        case pyport_calls:after_ms(Until) of
            Left when Left =/= 0 ->
                wait(Ref, S, CallDeadline);
            0 when Until =:= StreamDeadline ->
                ok = cancel(Ref),
                {error, timeout};
            0 ->
                {error, timeout}
        end
    end.

%% Takes Item; every grant_every items taken are granted back to the port.
take(Ref, Item, #pull{taken = Taken, grant_every = Every, stream = Stream} = S)
  when Taken + 1 >= Every, Stream =/= undefined ->
    _ = pyport_calls:grant(Ref, Taken + 1, Stream),
    {ok, Item, S#pull{taken = 0}};
take(_Ref, Item, #pull{taken = Taken} = S) ->
    {ok, Item, S#pull{taken = Taken + 1}}.

ended(Ref) ->
    erase(?KEY(Ref)),
    forget(Ref).

%% After this nothing of the stream reaches the caller: the alias is
%% inactive, so only messages already delivered can be left, and they
%% are removed.
forget(Ref) ->
    erlang:demonitor(Ref, [flush]),
    unalias(Ref),
    flush(Ref).

flush(Ref) ->
    receive
        {py_stream, Ref, _} -> flush(Ref)
    after 0 -> ok
    end.

collect(Ref, ItemTimeout, Acc) ->
    case next(Ref, ItemTimeout) of
        {ok, Item} ->
            collect(Ref, ItemTimeout, [Item | Acc]);
        done ->
            {ok, lists:reverse(Acc)};
        {error, timeout} ->
            ok = cancel(Ref),
            {error, timeout};
        {error, _} = Error ->
            Error
    end.
