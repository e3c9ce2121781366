%% erlang_python's event-driven streams (py:stream_start/3,4,
%% py:stream_cancel/1; docs/porting.md): the items of a generator as
%% `{py_stream, Ref, {data, Item}}` messages, then `{py_stream, Ref, done}`
%% or `{py_stream, Ref, {error, Reason}}`, with no acknowledgements.
%%
%% A relay process owns a py_stream in active mode (the same messages,
%% but with credit the consumer must grant) and forwards each item to the
%% stream's owner, granting the credit itself. Ref is the relay's alias,
%% so stream_cancel/1 needs no registry. The relay monitors the owner and
%% ends with it (which cancels the Python generator); it ends with the
%% stream too. What it gives up is the flow control: a slow owner's
%% mailbox grows, as with erlang_python; py_stream keeps it bounded.
-module(py_stream_relay).

%% API.
-export([start/5]).
-export([cancel/1]).

%% Internal.
-export([init/6]).

-type options() :: #{owner => pid(), kwargs => py_event_loop:kwargs()}.
-export_type([options/0]).

-define(WINDOW, 64).
-define(START_TIMEOUT, 30000).

%% API.

-spec start(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
            options()) -> {ok, reference()} | {error, term()}.
start(Loop, Module, Func, Args, Opts) ->
    Owner = maps:get(owner, Opts, self()),
    is_pid(Owner) orelse error({badarg, {owner, Owner}}),
    Kwargs = maps:get(kwargs, Opts, #{}),
    {Pid, Mon} = spawn_monitor(?MODULE, init, [self(), Owner, Loop, Module, Func,
                                               {Args, Kwargs}]),
    receive
        {started, Pid, Ref} ->
            erlang:demonitor(Mon, [flush]),
            {ok, Ref};
        {'DOWN', Mon, process, Pid, Reason} ->
            {error, Reason}
    after ?START_TIMEOUT ->
        exit(Pid, kill),
        erlang:demonitor(Mon, [flush]),
        {error, timeout}
    end.

-spec cancel(reference()) -> ok.
cancel(Ref) when is_reference(Ref) ->
    %% An alias that has gone (the stream ended) drops the message.
    erlang:send(Ref, {cancel, Ref}),
    ok.

%% Internal.

-spec init(pid(), pid(), py_event_loop:loop(), py_event_loop:py_name(),
           py_event_loop:py_name(), {list(), py_event_loop:kwargs()}) -> ok.
init(Starter, Owner, Loop, Module, Func, {Args, Kwargs}) ->
    OwnerMon = erlang:monitor(process, Owner),
    Ref = alias([explicit_unalias]),
    Stream = py_event_loop:stream(Loop, Module, Func, Args,
                                  #{mode => active, window => ?WINDOW, kwargs => Kwargs}),
    Starter ! {started, self(), Ref},
    relay(Owner, OwnerMon, Ref, Stream).

relay(Owner, OwnerMon, Ref, Stream) ->
    receive
        {py_stream, Stream, {data, Item}} ->
            Owner ! {py_stream, Ref, {data, Item}},
            ok = py_stream:ack(Stream, 1),
            relay(Owner, OwnerMon, Ref, Stream);
        {py_stream, Stream, done} ->
            Owner ! {py_stream, Ref, done},
            ok;
        {py_stream, Stream, {error, Reason}} ->
            Owner ! {py_stream, Ref, {error, Reason}},
            ok;
        {cancel, Ref} ->
            _ = py_stream:cancel(Stream),
            Owner ! {py_stream, Ref, {error, cancelled}},
            ok;
        {'DOWN', OwnerMon, process, Owner, _} ->
            _ = py_stream:cancel(Stream),
            ok
    end.
