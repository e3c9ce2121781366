%% The caller's side of a task on another node (docs/cluster.md): a local
%% courier process spawns the proxy there (pyport_cluster_proxy) with a
%% monitor and exits with the result its 'DOWN' carries; the caller
%% waits for the courier's 'DOWN', or for its own deadline.
%%
%% The courier is what keeps the deadline whatever the member does: a
%% send over distribution (the spawn request, a kill) suspends its sender
%% while the connection's buffer is full, which is what a member that is
%% stopped (SIGSTOP) or unreachable leaves it until nodedown, a minute
%% later. Only the courier can be suspended so; the caller only receives
%% and kills a local process, and is answered by its deadline.
%%
%% Lost nodes and callers: when the target node dies or is disconnected,
%% the runtime delivers `{'DOWN', _, _, _, noconnection}` to the courier,
%% which passes on `{error, {nodedown, Node}}` at once. The proxy's guard
%% watches the courier: a courier that goes (its caller died or gave up,
%% and killed it) takes the proxy, and so the task, with it.
-module(pyport_cluster_call).

%% API.
-export([run/5]).
-export([start/4]).
-export([wait/3]).
-export([spawn_task/3]).

%% Internal, spawned by start/4 and spawn_task/3.
-export([courier/5]).

-define(RESULT, py_cluster_result).
%% How long a remote spawn_task may take to be accepted (as the pool's
%% create/spawn submissions).
-define(SUBMIT_MS, 5000).
%% The courier's pid, by its monitor, in the caller's process dictionary.
-define(COURIER(MRef), {?MODULE, courier, MRef}).

-type reason() :: py_event_loop:reason()
                | {nodedown, node()}
                | {proxy_down, term()}.
-export_type([reason/0]).

%% API.

%% Runs Call on loop Target of Node and waits for the result; the caller
%% never waits past Timeout, and the proxy dies (cancelling the task)
%% when it stops waiting.
-spec run(node(), pyport_cluster_proxy:target(), pyport_cluster_proxy:call(), timeout(),
          integer() | infinity) -> {ok, term()} | {error, reason()}.
run(Node, Target, Call, Timeout, Deadline) ->
    wait(Node, start(Node, Target, Call, Timeout), Deadline).

%% Starts the courier (and through it the proxy); the reference is what
%% wait/3 takes, in this process.
-spec start(node(), pyport_cluster_proxy:target(), pyport_cluster_proxy:call(), timeout())
    -> reference().
start(Node, Target, Call, Timeout) ->
    {Pid, MRef} = spawn_monitor(?MODULE, courier,
                                [self(), Node, Target, {run, Call, Timeout}, start]),
    put(?COURIER(MRef), Pid),
    MRef.

%% The result of the task behind MRef, by Deadline (monotonic ms).
-spec wait(node(), reference(), integer() | infinity)
    -> {ok, term()} | {error, reason()}.
wait(_Node, MRef, Deadline) ->
    receive
        {'DOWN', MRef, process, _, {?RESULT, Result}} ->
            erase(?COURIER(MRef)),
            Result;
        {'DOWN', MRef, process, _, Reason} ->
            erase(?COURIER(MRef)),
            {error, {proxy_down, Reason}}
    after pyport_calls:after_ms(Deadline) ->
        case pyport_calls:after_ms(Deadline) of
            %% Only a chunk of a longer wait has passed.
            Left when Left =/= 0 -> wait(_Node, MRef, Deadline);
            0 -> timed_out(MRef)
        end
    end.

%% spawn_task on Node: fire and forget there, so erpc is enough (no
%% proxy to keep alive); a lost node is still `nodedown` at once. The
%% erpc call is the courier's, so that a full connection cannot hold the
%% caller past its bound.
-spec spawn_task(node(), pyport_cluster_proxy:target(), pyport_cluster_proxy:call())
    -> ok | {error, reason()}.
spawn_task(Node, Target, Call) ->
    {Pid, MRef} = spawn_monitor(?MODULE, courier, [self(), Node, Target, Call, spawn]),
    receive
        {'DOWN', MRef, process, Pid, {?RESULT, Result}} -> Result;
        {'DOWN', MRef, process, Pid, Reason} -> {error, {proxy_down, Reason}}
    after ?SUBMIT_MS ->
        erlang:demonitor(MRef, [flush]),
        exit(Pid, kill),
        {error, timeout}
    end.

%% The courier's body: does the distribution work and exits with
%% `{py_cluster_result, Result}`, or when its caller goes.
-spec courier(pid(), node(), pyport_cluster_proxy:target(), term(), start | spawn)
    -> no_return().
courier(Caller, Node, Target, Job, start) ->
    CallerRef = erlang:monitor(process, Caller),
    ReqId = erlang:spawn_request(Node, pyport_cluster_proxy, start, [self(), Target, Job],
                                 [monitor]),
    exit({?RESULT, relay(Node, ReqId, CallerRef)});
courier(_Caller, Node, Target, Call, spawn) ->
    Result = try
                 erpc:call(Node, pyport_cluster_proxy, spawn_task, [Target, Call], ?SUBMIT_MS)
             catch
                 error:{erpc, noconnection} -> {error, {nodedown, Node}};
                 error:{erpc, timeout} -> {error, timeout};
                 Class:Reason -> {error, {proxy_down, {Class, Reason}}}
             end,
    exit({?RESULT, Result}).

%% Internal.

relay(Node, ReqId, CallerRef) ->
    receive
        {spawn_reply, ReqId, ok, _Proxy} ->
            relay(Node, ReqId, CallerRef);
        %% With a failed spawn no 'DOWN' follows.
        {spawn_reply, ReqId, error, Reason} ->
            {error, down(Node, Reason)};
        {'DOWN', ReqId, process, _, {?RESULT, Result}} ->
            Result;
        {'DOWN', ReqId, process, _, Reason} ->
            {error, down(Node, Reason)};
        {'DOWN', CallerRef, process, _, _} ->
            %% The proxy's guard sees this process go, and stops the task.
            exit(caller_down)
    end.

down(Node, noconnection) -> {nodedown, Node};
down(_, Reason) -> {proxy_down, Reason}.

timed_out(MRef) ->
    Pid = erase(?COURIER(MRef)),
    receive
        %% Arrived just now: use it rather than kill a finished courier.
        {'DOWN', MRef, process, _, {?RESULT, Result}} -> Result
    after 0 ->
        erlang:demonitor(MRef, [flush]),
        %% Killing the courier is what cancels the task on the other node
        %% (the proxy's guard sees it go); a local kill never suspends.
        _ = is_pid(Pid) andalso exit(Pid, kill),
        {error, timeout}
    end.
