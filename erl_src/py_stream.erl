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

-include("py_event_loop.hrl").

%% API.
-export([next/1]).
-export([next/2]).
-export([ack/2]).
-export([to_list/1]).
-export([to_list/2]).
-export([foreach/2]).
-export([cancel/1]).

%% For py_event_loop and py_event_loop_pool.
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
    loop :: #py_loop{} | undefined,
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
%% port, and how long granting credit may wait for a full port.
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
    Wait = py_event_task:check_timeout(Timeout),
    case get(?KEY(Ref)) of
        #pull{buf = [Item | Rest]} = S ->
            {ok, Item, S1} = take(Ref, Item, S#pull{buf = Rest}),
            put(?KEY(Ref), S1),
            {ok, Item};
        #pull{} = S ->
            wait(Ref, S, py_event_task:deadline(Wait));
        undefined ->
            {error, unknown_stream}
    end;
next(Ref, _) ->
    error({badarg, {stream, Ref}}).

%% Active mode: grants K more items. Granting credit for a stream that
%% has ended (or is not the caller's) does nothing.
-spec ack(stream(), pos_integer()) -> ok.
ack(Ref, K) when is_reference(Ref), is_integer(K), K > 0 ->
    case find_active(Ref) of
        {ok, Loop} ->
            _ = grant(Ref, K, Loop),
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
    Loop = case erase(?KEY(Ref)) of
               #pull{loop = L} -> L;
               undefined -> case find_active(Ref) of
                                {ok, L} -> L;
                                error -> undefined
                            end
           end,
    case Loop of
        #py_loop{} -> cancel_on(Ref, Loop);
        undefined -> ok
    end,
    forget(Ref);
cancel(Ref) ->
    error({badarg, {stream, Ref}}).

%% Starts a stream of Module.Func(*Args, **Kwargs) on loop Index, owned by
%% the caller. Always returns a reference: a stream that cannot start
%% reports why as its first and last message.
-spec start(pos_integer(), py_event_loop:py_name(), py_event_loop:py_name(),
            list(), py_event_loop:kwargs(), options()) -> stream().
start(Index, Module, Func, Args, Kwargs, Opts) ->
    Mode = maps:get(mode, Opts, pull),
    Window = maps:get(window, Opts, ?DEFAULT_WINDOW),
    Timeout = maps:get(timeout, Opts, infinity),
    Wire = wire_opts(Opts, Window),
    Deadline = py_event_task:deadline(?SUBMIT_MS),
    Started = case py_event_task:live_loop(Index, Deadline) of
                  {ok, #py_loop{worker = Worker} = Loop} ->
                      Request = {Module, Func, Args, Kwargs, Wire, Mode, Window},
                      case start_on(Loop, Request, Deadline) of
                          {error, stale} ->
                              case py_event_loop_pool:await_loop(Index, Worker, Deadline) of
                                  {ok, Fresh} -> fresh(start_on(Fresh, Request, Deadline));
                                  {error, _} = E -> E
                              end;
                          Other ->
                              Other
                      end;
                  {error, _} = E ->
                      E
              end,
    case Started of
        {ok, Ref, Loop1} ->
            remember(Ref, Mode, Loop1, Window, Timeout),
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
    _ = py_event_task:check_timeout(T), ok;
check_option(Key, N) when (Key =:= window orelse Key =:= batch),
                          is_integer(N), N > 0, N =< 16#7fffffff -> ok;
check_option(mode, M) when M =:= pull; M =:= active -> ok;
check_option(Key, Value) -> error({badarg, {option, Key, Value}}).

%% What Python gets: the window, the batch bound, the deadlines.
wire_opts(Opts, Window) ->
    Base = #{window => Window, batch => maps:get(batch, Opts, ?DEFAULT_BATCH),
             caller => self()},
    Base1 = case maps:get(timeout, Opts, infinity) of
                infinity -> Base;
                T -> Base#{deadline_ms => T}
            end,
    case maps:get(idle_timeout, Opts, infinity) of
        infinity -> Base1;
        I -> Base1#{idle_ms => I}
    end.

fresh({error, stale}) -> {error, loop_unavailable};
fresh(Started) -> Started.

%% As py_event_task's submission, with the stream's own entries: pending
%% (so that the worker's monitor, cancel grace and crash handling cover
%% it), the caller index, and the credit the window grants.
start_on(#py_loop{worker = Worker, port = Port, pending = Pending,
                  by_caller = ByCaller, monitored = Monitored, streams = Credit,
                  max_pending = Max, max_packet = MaxPacket} = Loop,
         {Module, Func, Args, Kwargs, Wire, Mode, Window}, Deadline) ->
    %% Pull consumers also watch the worker (next/2 sees it die); an
    %% active consumer's mailbox gets only the stream's own messages, and
    %% the worker reports a port's end to it.
    Ref = case Mode of
              pull -> erlang:monitor(process, Worker, [{alias, explicit_unalias}]);
              active -> alias([explicit_unalias])
          end,
    try
        Packet = pyport_wire:stream_start(Ref, Module, Func, Args, Kwargs, Wire),
        case pyport_wire:payload_size(Packet) of
            Size when Size > MaxPacket -> throw({packet_too_large, Size, MaxPacket});
            _ -> ok
        end,
        case Max =/= infinity andalso ets:info(Pending, size) >= Max of
            true -> throw(overloaded);
            false -> ok
        end,
        case ets:member(Monitored, self()) of
            true -> ok;
            false -> gen_server:cast(Worker, {monitor, self()})
        end,
        true = ets:insert(Credit, {Ref, Window}),
        true = ets:insert(ByCaller, {{self(), Ref}}),
        true = ets:insert(Pending, {Ref, {stream, self(), Mode}}),
        case py_event_task:write(Port, Packet, Deadline) of
            ok -> {ok, Ref, Loop};
            busy -> throw(timeout)
        end
    catch
        throw:Why ->
            abandon(Ref, Loop),
            {error, Why};
        error:badarg ->
            abandon(Ref, Loop),
            {error, stale}
    end.

abandon(Ref, #py_loop{pending = Pending, by_caller = ByCaller, streams = Credit}) ->
    catch ets:delete(Pending, Ref),
    catch ets:delete(ByCaller, {self(), Ref}),
    catch ets:delete(Credit, Ref),
    forget(Ref).

remember(Ref, pull, Loop, Window, Timeout) ->
    put(?KEY(Ref), #pull{loop = Loop, grant_every = max(1, Window div 2),
                         deadline = py_event_task:deadline(Timeout)});
remember(_Ref, active, _Loop, _Window, _Timeout) ->
    %% Nothing to keep: ack/2 and cancel/1 find the stream in its loop.
    ok.

%% Waits for the next batch or the end, until the call's Deadline or the
%% stream's own, whichever is first.
wait(Ref, #pull{deadline = StreamDeadline} = S, CallDeadline) ->
    Until = earliest(CallDeadline, StreamDeadline),
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
    after py_event_task:after_ms(Until) ->
        case py_event_task:after_ms(Until) of
            Left when Left =/= 0 ->
                wait(Ref, S, CallDeadline);
            0 when Until =:= StreamDeadline ->
                ok = cancel(Ref),
                {error, timeout};
            0 ->
                {error, timeout}
        end
    end.

earliest(infinity, B) -> B;
earliest(A, infinity) -> A;
earliest(A, B) -> min(A, B).

%% Takes Item; every grant_every items taken are granted back to the port.
take(Ref, Item, #pull{taken = Taken, grant_every = Every, loop = Loop} = S)
  when Taken + 1 >= Every ->
    _ = grant(Ref, Taken + 1, Loop),
    {ok, Item, S#pull{taken = 0}};
take(_Ref, Item, #pull{taken = Taken} = S) ->
    {ok, Item, S#pull{taken = Taken + 1}}.

%% Credit is counted before it is sent, so that the worker never sees an
%% item the consumer has not made room for as beyond the credit.
grant(Ref, K, #py_loop{port = Port, streams = Credit}) ->
    try ets:update_counter(Credit, Ref, {2, K}) of
        _ ->
            try py_event_task:write(Port, pyport_wire:stream_credit(Ref, K),
                                    py_event_task:deadline(?SUBMIT_MS)) of
                ok -> ok;
                %% Python has not read its input for SUBMIT_MS: the stream
                %% stalls and ends by its own timeouts or the cancel grace.
                busy -> busy
            catch
                error:badarg -> closed
            end
    catch
        %% The stream has ended (or the worker is gone).
        error:badarg -> ended
    end;
grant(_Ref, _K, undefined) ->
    ended.

%% Marks the stream cancelled (the worker then expects Python's answer
%% within the cancel grace, as for a task) and tells the port.
cancel_on(Ref, #py_loop{worker = Worker, port = Port, pending = Pending,
                        by_caller = ByCaller, cancel_grace_ms = Grace}) ->
    case pyport_overdue:mark(Pending, Ref, Grace) of
        KillAt when is_integer(KillAt) ->
            catch ets:delete(ByCaller, {self(), Ref}),
            gen_server:cast(Worker, {cancelled, KillAt}),
            try erlang:port_command(Port, pyport_wire:stream_cancel(Ref), [nosuspend]) of
                true -> ok;
                %% The worker sends a (generic) cancel once the port reads.
                false -> gen_server:cast(Worker, {cancel, Ref})
            catch
                error:badarg -> ok
            end;
        false ->
            ok
    end.

find_active(Ref) ->
    find_active(Ref, 1, num_loops()).

find_active(_Ref, I, N) when I > N ->
    error;
find_active(Ref, I, N) ->
    Self = self(),
    case py_event_loop_pool:lookup(I) of
        {ok, #py_loop{pending = Pending} = Loop} ->
            try ets:lookup(Pending, Ref) of
                [{Ref, {stream, Self, active}}] -> {ok, Loop};
                _ -> find_active(Ref, I + 1, N)
            catch
                error:badarg -> find_active(Ref, I + 1, N)
            end;
        _ ->
            find_active(Ref, I + 1, N)
    end.

num_loops() ->
    case py_event_loop_pool:num_loops() of
        undefined -> 0;
        N -> N
    end.

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
