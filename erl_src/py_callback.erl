%% Erlang functions Python may call: `erlang.call(Name, *Args)` and
%% `await erlang.async_call(Name, *Args)` run the fun registered here as
%% `Fun(Args)`.
%%
%% The registry is a protected named ETS table owned by this gen_server
%% (first child of pyport_sup), so lookups never go through a process.
%% Each call from Python runs in a fresh process (see run/3), which
%% answers the port itself: a slow callback holds up nobody, and a
%% callback may run Python on any loop, including the one that called it.
%% A loop runs at most `max_callbacks` at once, and each ends when Python
%% gives up on it or the loop's worker goes (pyport_callback_runs).
%%
%% serve/5 answers every request Python makes of Erlang (`erlang.call`,
%% `erlang.send`, `erlang.whereis`) for pyport_worker. Task code has the
%% sending rights of the node (it can stop `init`) unless the loop's
%% `send_allow` restricts sends and whereis to its callers and a list of
%% registered names.
%%
%% Nothing here waits for anything Python or another node controls:
%% answers are written with `nosuspend` (a port too busy to take one
%% hands it to the worker's queue, pyport_calls:send_port/2), and
%% sends to other nodes with `nosuspend` and `noconnect` (refused, not
%% waited for).
-module(py_callback).
-behaviour(gen_server).

-compile({no_auto_import, [register/2, unregister/1]}).

%% API.
-export([register/2]).
-export([unregister/1]).
-export([lookup/1]).
-export([registered/0]).

%% Internal exports, for pyport_worker and pyport_serve.
-export([start_link/0]).
-export([serve/5]).
-export([send_policy/2]).
-export([run/3]).
-export([deliver/2]).
-export([whereis_name/1]).
-export([python_safe/1]).
-export([callback_process/2]).

%% Internal exports: gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).

-define(TABLE, py_callbacks).
%% Deeper reasons are sent as text: the port refuses terms nested over
%% 1000 levels, and nobody reads a reason that deep anyway.
-define(MAX_SAFE_DEPTH, 100).

-type name() :: atom() | binary().
-type callback() :: fun((list()) -> term()) | {module(), atom()}.
-type reply() :: {ok, term()}
               | {error, {erlang, error | exit | throw, term(), binary()}
                       | {unknown_callback, binary()}}.
%% The `send_allow` setting of a loop: `any`, or the registered names
%% (and, with `pids => callers`, the pids of callers with a task pending
%% on the loop) that Python may send to or look up.
-type send_allow() :: any | #{names => [atom()], pids => callers | none}.
%% send_allow resolved for one loop (the pending table to find callers).
-opaque send_policy() :: any | {only, [atom()], ets:tid() | none}.
%% A request from Python, as pyport_wire:decode/3 returns it.
-type request() :: {call, CallId :: term(), Name :: term(), Args :: term()}
                 | {send, CallId :: term(), Dest :: term(), Msg :: term()}
                 | {send, Dest :: term(), Msg :: term()}
                 | {whereis, CallId :: term(), Name :: term()}
                 | {registered, CallId :: term(), Name :: term()}
                 | {call_cancel, CallId :: term()}.
%% Where a request's answer goes: the loop's worker and port, and the
%% largest packet the port accepts (replies over it become errors).
-type channel() :: #{worker := pid(), port := port(), max_packet := pos_integer()}.
-export_type([name/0, callback/0, reply/0, request/0, send_allow/0,
              send_policy/0, channel/0]).

%% API.

%% Registers Fun under Name, replacing what was there. Python's
%% `erlang.call('name', A, B)` then runs `Fun([A, B])` (or `M:F([A, B])`
%% for {M, F}); an atom and the binary of its name are the same name.
-spec register(name(), callback()) -> ok | {error, not_started}.
register(Name, Fun) ->
    Key = key(Name),
    check_callback(Fun),
    server_call({register, Key, Fun}).

-spec unregister(name()) -> ok | {error, not_started}.
unregister(Name) ->
    server_call({unregister, key(Name)}).

-spec lookup(name()) -> {ok, callback()} | error.
lookup(Name) ->
    try ets:lookup(?TABLE, key(Name)) of
        [{_, Fun}] -> {ok, Fun};
        [] -> error
    catch
        error:badarg -> error
    end.

%% The registered names, as binaries, sorted.
-spec registered() -> [binary()].
registered() ->
    try
        lists:sort(ets:select(?TABLE, [{{'$1', '_'}, [], ['$1']}]))
    catch
        error:badarg -> []
    end.

%% For pyport_worker.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% The policy of a loop whose pending tasks are indexed by caller in
%% ByCaller (an ordered_set of {{Caller, Ref}}).
-spec send_policy(send_allow(), ets:tid()) -> send_policy().
send_policy(any, _ByCaller) ->
    any;
send_policy(Allow, ByCaller) when is_map(Allow) ->
    {only, maps:get(names, Allow, []),
     case maps:get(pids, Allow, callers) of
         callers -> ByCaller;
         none -> none
     end}.

%% Answers a request that Python sent through the channel's port. Runs
%% in the worker, so that the messages one loop sends keep their order; a
%% call runs in a fresh process (run/3) that answers the port itself,
%% tracked in Runs (Index, the loop's, is for the log). Calls go to registered callbacks only, which the
%% node's owner chose: the policy restricts sends and whereis.
-spec serve(request(), channel(), send_policy(), pyport_callback_runs:runs(),
            pyport_task:loop_index()) -> ok.
serve({call, CallId, Name, Args}, Channel, _, Runs, _) ->
    Start = fun() -> spawn(?MODULE, run, [Channel, Runs, {CallId, Name, Args}]) end,
    case pyport_callback_runs:start(Runs, CallId, Start) of
        ok ->
            ok;
        {error, {callback_limit, _} = Reason} ->
            %% Nothing is spawned: Python hears at once why.
            answer(Channel, pyport_wire:call_reply(CallId, {error, Reason}));
        {error, Reason} ->
            answer(Channel, pyport_wire:call_reply(
                              CallId, {error, {erlang, error, Reason, format(error, Reason, [])}}))
    end;
serve({call_cancel, CallId}, _, _, Runs, _) ->
    %% Python gave up on the call (its task was cancelled or timed out).
    pyport_callback_runs:cancel(Runs, CallId);
serve({send, CallId, Dest, Msg}, Channel, Policy, _, _) ->
    %% The answer says whether the destination existed (or was allowed).
    Reply = case allowed(Dest, Policy) of
                true -> deliver(Dest, Msg);
                false -> {error, not_allowed}
            end,
    answer(Channel, pyport_wire:call_reply(CallId, Reply));
serve({whereis, CallId, Name}, Channel, Policy, _, _) ->
    %% A name it may not send to is, for the task, not registered.
    Pid = case whereis_name(Name) of
              undefined -> undefined;
              Found -> case allowed(Found, Policy) of
                           true -> Found;
                           false -> name_allowed(Name, Policy, Found)
                       end
          end,
    answer(Channel, pyport_wire:call_reply(CallId, {ok, Pid}));
serve({registered, CallId, Name}, Channel, _, _, _) ->
    %% `erlang.<name>` in Python (attribute-style callbacks): only
    %% registered names are attributes. Registration is the node owner's
    %% choice, so the send policy does not apply.
    answer(Channel, pyport_wire:call_reply(CallId, {ok, lookup_name(Name) =/= error}));
serve({send, Dest, Msg}, _, Policy, _, Index) ->
    %% Fire and forget (protocol v1): a destination that does not exist
    %% (or is not allowed) is ignored, as with `!`; one the distribution
    %% refused is logged (the sender is told nothing).
    case allowed(Dest, Policy) of
        true ->
            case deliver(Dest, Msg) of
                {error, Why} when Why =:= busy; Why =:= noconnection ->
                    dropped(Dest, Why, Index);
                _ ->
                    ok
            end;
        false ->
            ok
    end.

%% Runs the callback for one Python call and writes
%% `{call_reply, CallId, Reply}` to the port. The callback runs in a
%% process of its own, linked and monitored: an exception, and even a
%% kill, becomes an error reply, so the Python side is always answered,
%% unless it gave up on the call (`call_cancel`) or the worker went: the
%% callback is then killed, unanswered.
-spec run(channel(), pyport_callback_runs:runs(), {term(), term(), term()}) -> ok.
run(#{worker := Worker, max_packet := MaxPacket} = Channel, Runs, {CallId, Name, Args}) ->
    WRef = erlang:monitor(process, Worker),
    %% The link's exit signal ends the callback if this process is killed;
    %% its own exit reaches this one as a message.
    process_flag(trap_exit, true),
    case lookup_name(Name) of
        {ok, Fun} ->
            case supervised(Fun, args(Args), WRef) of
                {reply, Reply} -> answer(Channel, encode_reply(CallId, Reply, MaxPacket));
                abandoned -> ok
            end;
        error ->
            answer(Channel, encode_reply(CallId, {error, {unknown_callback, name_binary(Name)}},
                                         MaxPacket))
    end,
    pyport_callback_runs:done(Runs, CallId).

%% `erlang.send(Dest, Msg)`: {ok, true} once delivered (or handed to the
%% distribution), {error, noproc} when the destination does not exist.
%% Another node's destination never makes the caller wait: {error, busy}
%% when the distribution to it is full (a node that does not read), and
%% {error, noconnection} when the node is not connected; the message is
%% dropped.
-spec deliver(term(), term()) -> {ok, true} | {error, noproc | badarg | busy | noconnection}.
deliver(Pid, Msg) when is_pid(Pid), node(Pid) =:= node() ->
    case is_process_alive(Pid) of
        false -> {error, noproc};
        true -> Pid ! Msg, {ok, true}
    end;
deliver(Pid, Msg) when is_pid(Pid) ->
    remote(Pid, Msg);
deliver(Name, Msg) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> {error, noproc};
        Pid -> deliver(Pid, Msg)
    end;
deliver(Alias, Msg) when is_reference(Alias) ->
    %% An alias: whether it is active cannot be told; like `!`.
    remote(Alias, Msg);
deliver({Name, Node}, Msg) when is_atom(Name), Node =:= node() ->
    deliver(Name, Msg);
deliver({Name, Node} = Dest, Msg) when is_atom(Name), is_atom(Node) ->
    remote(Dest, Msg);
deliver(_, _) ->
    {error, badarg}.

%% `erlang.whereis(Name)`: a name that is not an atom yet cannot be
%% registered, and is not made an atom by asking.
-spec whereis_name(term()) -> pid() | port() | undefined.
whereis_name(Name) when is_atom(Name) ->
    whereis(Name);
whereis_name(Name) when is_binary(Name) ->
    try binary_to_existing_atom(Name, utf8) of
        Atom -> whereis(Atom)
    catch
        error:badarg -> undefined
    end;
whereis_name(_) ->
    undefined.

%% Term itself when the port can give it to Python (the type table, with
%% hashable map keys, not too deep); its printed form as a binary otherwise.
-spec python_safe(term()) -> term().
python_safe(Term) ->
    case safe(Term, 0) of
        true -> Term;
        false -> iolist_to_binary(io_lib:format("~0tp", [Term]))
    end.

%% gen_server.

-spec init([]) -> {ok, undefined}.
init([]) ->
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), undefined)
    -> {reply, ok | {error, {unknown_call, term()}}, undefined}.
handle_call({register, Key, Fun}, _From, State) ->
    true = ets:insert(?TABLE, {Key, Fun}),
    {reply, ok, State};
handle_call({unregister, Key}, _From, State) ->
    true = ets:delete(?TABLE, Key),
    {reply, ok, State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), undefined) -> {noreply, undefined}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% Internal.

%% Whether Python may send to Dest. Restricted: an allowed name (or the
%% pid registered under one), or a pid with a task pending on the loop;
%% never an alias or another node.
allowed(_, any) ->
    true;
allowed(Name, {only, Names, _}) when is_atom(Name) ->
    lists:member(Name, Names);
allowed({Name, Node}, Policy) when is_atom(Name), Node =:= node() ->
    allowed(Name, Policy);
allowed(Pid, {only, Names, ByCaller}) when is_pid(Pid), node(Pid) =:= node() ->
    lists:any(fun(Name) -> whereis(Name) =:= Pid end, Names)
        %% A key prefix of the ordered_set: no scan of the loop's tasks.
        orelse (ByCaller =/= none andalso
                ets:select(ByCaller, [{{{Pid, '_'}}, [], [true]}], 1) =/= '$end_of_table');
allowed(_, _) ->
    false.

name_allowed(Name, {only, Names, _}, Found) ->
    case lists:member(Name, Names)
        orelse (is_binary(Name) andalso
                lists:member(Name, [atom_to_binary(N, utf8) || N <- Names])) of
        true -> Found;
        false -> undefined
    end.

%% Never suspends the writer (the worker, or a run) on a port Python does
%% not read: what the port does not take now waits in the worker's queue
%% (pyport_calls:send_port/2; a port that stays full is killed by the
%% unresponsive check). A closed port has taken its caller with it.
answer(#{port := Port}, Packet) ->
    _ = pyport_calls:send_port(Port, Packet),
    ok.

%% Another node's process (or any alias: a local one is never busy).
remote(Dest, Msg) ->
    case erlang:send(Dest, Msg, [nosuspend, noconnect]) of
        ok -> {ok, true};
        nosuspend -> {error, busy};
        noconnect -> {error, noconnection}
    end.

%% A fire-and-forget send the distribution refused. Logged once a second
%% at most per worker, with how many were dropped meanwhile: a flood to a
%% stopped node must not flood the log.
dropped(Dest, Why, Index) ->
    Now = erlang:monotonic_time(millisecond),
    case get(?MODULE) of
        {Count, Since} when Now - Since < 1000 ->
            put(?MODULE, {Count + 1, Since});
        Last ->
            Count = case Last of {C, _} -> C + 1; undefined -> 1 end,
            put(?MODULE, {0, Now}),
            logger:warning("pyport loop ~p: erlang.send to ~0tp dropped (~p); "
                           "~b message(s) dropped since the last report",
                           [Index, Dest, Why, Count], #{pyport_loop => Index})
    end,
    ok.

key(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
key(Name) when is_binary(Name) -> Name;
key(Name) -> error({badarg, {name, Name}}).

check_callback(Fun) when is_function(Fun, 1) -> ok;
check_callback({M, F}) when is_atom(M), is_atom(F) -> ok;
check_callback(Other) -> error({badarg, {callback, Other}}).

server_call(Request) ->
    try
        gen_server:call(?MODULE, Request)
    catch
        exit:{noproc, _} -> {error, not_started}
    end.

lookup_name(Name) when is_atom(Name); is_binary(Name) -> lookup(Name);
lookup_name(_) -> error.

name_binary(Name) when is_binary(Name) -> Name;
name_binary(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
name_binary(Name) -> iolist_to_binary(io_lib:format("~0tp", [Name])).

args(Args) when is_list(Args) -> Args;
args(Arg) -> [Arg].

%% The process a callback runs in: its exit reason carries the reply.
-spec callback_process(callback(), list()) -> no_return().
callback_process(Fun, Args) ->
    exit({?MODULE, apply_callback(Fun, Args)}).

supervised(Fun, Args, WRef) ->
    {Pid, MRef} = spawn_opt(?MODULE, callback_process, [Fun, Args], [link, monitor]),
    receive
        {'DOWN', MRef, process, Pid, {?MODULE, Reply}} ->
            {reply, Reply};
        {'DOWN', MRef, process, Pid, Reason} ->
            %% Killed, or exited from a process it spawned and linked.
            {reply, {error, {erlang, exit, python_safe(Reason),
                             format(exit, Reason, [])}}};
        {pyport_callback_runs, cancel} ->
            %% (pyport_callback_runs:cancel/2) Python gave up on the call.
            kill_callback(Pid, MRef);
        {'DOWN', WRef, process, _, _} ->
            %% The loop's worker is gone, and its port with it.
            kill_callback(Pid, MRef)
    end.

kill_callback(Pid, MRef) ->
    exit(Pid, kill),
    receive {'DOWN', MRef, process, Pid, _} -> abandoned end.

apply_callback(Fun, Args) ->
    try call_fun(Fun, Args) of
        Result -> {ok, Result}
    catch
        Class:Reason:Stack ->
            {error, {erlang, Class, python_safe(Reason), format(Class, Reason, Stack)}}
    end.

call_fun({M, F}, Args) -> M:F(Args);
call_fun(Fun, Args) -> Fun(Args).

format(Class, Reason, Stack) ->
    Text = erl_error:format_exception(Class, Reason, Stack),
    case unicode:characters_to_binary(Text) of
        Bin when is_binary(Bin) -> Bin;
        _ -> iolist_to_binary(io_lib:format("~0tp:~0tp", [Class, Reason]))
    end.

%% A reply larger than the port accepts would be skipped by the port,
%% leaving the Python call waiting for ever; it gets an error instead.
encode_reply(CallId, Reply, MaxPacket) ->
    Packet = pyport_wire:call_reply(CallId, Reply),
    case pyport_wire:payload_size(Packet) of
        Size when Size > MaxPacket ->
            Reason = {reply_too_large, Size, MaxPacket},
            pyport_wire:call_reply(CallId, {error, {erlang, error, Reason,
                                                    format(error, Reason, [])}});
        _ ->
            Packet
    end.

safe(_, Depth) when Depth > ?MAX_SAFE_DEPTH -> false;
safe(T, _) when is_atom(T); is_number(T); is_pid(T); is_reference(T) -> true;
safe(T, _) when is_binary(T) -> true;
safe(T, Depth) when is_list(T) -> safe_list(T, Depth + 1);
safe(T, Depth) when is_tuple(T) -> safe_list(tuple_to_list(T), Depth + 1);
safe(T, Depth) when is_map(T) ->
    maps:fold(fun(K, V, Acc) ->
                      Acc andalso hashable(K, Depth + 1) andalso safe(V, Depth + 1)
              end, true, T);
safe(_, _) -> false.

safe_list([], _) -> true;
safe_list([H | T], Depth) -> safe(H, Depth) andalso safe_list(T, Depth);
safe_list(_, _) -> false.

%% Map keys become dict keys: lists and maps are not hashable in Python.
hashable(_, Depth) when Depth > ?MAX_SAFE_DEPTH -> false;
hashable(T, _) when is_atom(T); is_number(T); is_pid(T); is_reference(T);
                    is_binary(T) -> true;
hashable(T, Depth) when is_tuple(T) ->
    lists:all(fun(E) -> hashable(E, Depth + 1) end, tuple_to_list(T));
hashable(_, _) -> false.
