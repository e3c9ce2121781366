%% Erlang functions Python may call: `erlang.call(Name, *Args)` and
%% `await erlang.async_call(Name, *Args)` run the fun registered here as
%% `Fun(Args)`.
%%
%% The registry is a protected named ETS table owned by this gen_server
%% (first child of pyport_sup), so lookups never go through a process.
%% Each call from Python runs in a fresh process (see run/5), which
%% answers the port itself: a slow callback holds up nobody, and a
%% callback may run Python on any loop, including the one that called it.
%%
%% serve/4 answers every request Python makes of Erlang (`erlang.call`,
%% `erlang.send`, `erlang.whereis`) for pyport_worker. Task code has the
%% sending rights of the node (it can stop `init`) unless the loop's
%% `send_allow` restricts sends and whereis to its callers and a list of
%% registered names.
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
-export([serve/4]).
-export([send_policy/2]).
-export([run/5]).
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
                 | {registered, CallId :: term(), Name :: term()}.
-export_type([name/0, callback/0, reply/0, request/0, send_allow/0,
              send_policy/0]).

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

%% Answers a request that Python sent through Port (replies over
%% MaxPacket become errors). Runs in the worker, so that the messages one
%% loop sends keep their order; a call runs in a fresh process (run/5)
%% that answers the port itself. Calls go to registered callbacks only,
%% which the node's owner chose: the policy restricts sends and whereis.
-spec serve(request(), port(), pos_integer(), send_policy()) -> ok.
serve({call, CallId, Name, Args}, Port, MaxPacket, _) ->
    _ = spawn(?MODULE, run, [Port, CallId, Name, Args, MaxPacket]),
    ok;
serve({send, CallId, Dest, Msg}, Port, _, Policy) ->
    %% The answer says whether the destination existed (or was allowed).
    Reply = case allowed(Dest, Policy) of
                true -> deliver(Dest, Msg);
                false -> {error, not_allowed}
            end,
    answer(Port, pyport_wire:call_reply(CallId, Reply));
serve({whereis, CallId, Name}, Port, _, Policy) ->
    %% A name it may not send to is, for the task, not registered.
    Pid = case whereis_name(Name) of
              undefined -> undefined;
              Found -> case allowed(Found, Policy) of
                           true -> Found;
                           false -> name_allowed(Name, Policy, Found)
                       end
          end,
    answer(Port, pyport_wire:call_reply(CallId, {ok, Pid}));
serve({registered, CallId, Name}, Port, _, _) ->
    %% `erlang.<name>` in Python (attribute-style callbacks): only
    %% registered names are attributes. Registration is the node owner's
    %% choice, so the send policy does not apply.
    answer(Port, pyport_wire:call_reply(CallId, {ok, lookup_name(Name) =/= error}));
serve({send, Dest, Msg}, _, _, Policy) ->
    %% Fire and forget (protocol v1): a destination that does not exist
    %% (or is not allowed) is ignored, as with `!`.
    _ = allowed(Dest, Policy) andalso deliver(Dest, Msg) =:= {ok, true},
    ok.

%% Runs the callback for one Python call and writes
%% `{call_reply, CallId, Reply}` to Port. The callback runs in a process of
%% its own, monitored: an exception, and even a kill, becomes an error
%% reply, so the Python side is always answered.
-spec run(port(), term(), term(), term(), pos_integer()) -> ok.
run(Port, CallId, Name, Args, MaxPacket) ->
    Reply = case lookup_name(Name) of
                {ok, Fun} -> supervised(Fun, args(Args));
                error -> {error, {unknown_callback, name_binary(Name)}}
            end,
    answer(Port, encode_reply(CallId, Reply, MaxPacket)).

%% `erlang.send(Dest, Msg)`: {ok, true} once delivered (or handed to the
%% distribution), {error, noproc} when the destination does not exist.
-spec deliver(term(), term()) -> {ok, true} | {error, noproc | badarg}.
deliver(Pid, Msg) when is_pid(Pid) ->
    case node(Pid) =:= node() andalso not is_process_alive(Pid) of
        true -> {error, noproc};
        false -> erlang:send(Pid, Msg), {ok, true}
    end;
deliver(Name, Msg) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> {error, noproc};
        Pid -> deliver(Pid, Msg)
    end;
deliver(Alias, Msg) when is_reference(Alias) ->
    %% An alias: whether it is active cannot be told; like `!`.
    erlang:send(Alias, Msg),
    {ok, true};
deliver({Name, Node}, Msg) when is_atom(Name), Node =:= node() ->
    deliver(Name, Msg);
deliver({Name, Node} = Dest, Msg) when is_atom(Name), is_atom(Node) ->
    erlang:send(Dest, Msg),
    {ok, true};
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

answer(Port, Packet) ->
    %% Never suspended on a busy port (the worker answers some requests
    %% itself): what the port does not take now waits in the worker's
    %% queue. A closed port has taken its caller with it.
    _ = pyport_calls:send_port(Port, Packet),
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

supervised(Fun, Args) ->
    {Pid, MRef} = spawn_monitor(?MODULE, callback_process, [Fun, Args]),
    receive
        {'DOWN', MRef, process, Pid, {?MODULE, Reply}} ->
            Reply;
        {'DOWN', MRef, process, Pid, Reason} ->
            %% Killed, or exited from a process it spawned and linked.
            {error, {erlang, exit, python_safe(Reason),
                     format(exit, Reason, [])}}
    end.

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
