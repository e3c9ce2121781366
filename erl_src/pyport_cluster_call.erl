%% The caller's side of a task on another node (docs/cluster.md): spawn
%% the proxy there (pyport_cluster_proxy) with a monitor, wait for its
%% 'DOWN', which carries the result, or for the caller's deadline.
%%
%% The monitor is also how a lost node is noticed at once: when the
%% target node dies or is disconnected, the runtime delivers
%% `{'DOWN', _, _, _, noconnection}` to every caller with a task there,
%% which becomes `{error, {nodedown, Node}}`.
-module(pyport_cluster_call).

%% API.
-export([run/5]).
-export([start/4]).
-export([wait/3]).
-export([spawn_task/3]).

-define(RESULT, py_cluster_result).
%% How long a remote spawn_task may take to be accepted (as the pool's
%% create/spawn submissions).
-define(SUBMIT_MS, 5000).

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

%% Starts the proxy; the reference is what wait/3 takes.
-spec start(node(), pyport_cluster_proxy:target(), pyport_cluster_proxy:call(), timeout())
    -> reference().
start(Node, Target, Call, Timeout) ->
    erlang:spawn_request(Node, pyport_cluster_proxy, start,
                         [self(), Target, {run, Call, Timeout}], [monitor]).

%% The result of the task behind ReqId, by Deadline (monotonic ms).
-spec wait(node(), reference(), integer() | infinity)
    -> {ok, term()} | {error, reason()}.
wait(Node, ReqId, Deadline) ->
    wait(Node, ReqId, undefined, Deadline).

%% spawn_task on Node: fire and forget there, so erpc is enough (no
%% proxy to keep alive); a lost node is still `nodedown` at once.
-spec spawn_task(node(), pyport_cluster_proxy:target(), pyport_cluster_proxy:call())
    -> ok | {error, reason()}.
spawn_task(Node, Target, Call) ->
    try
        erpc:call(Node, pyport_cluster_proxy, spawn_task, [Target, Call], ?SUBMIT_MS)
    catch
        error:{erpc, noconnection} -> {error, {nodedown, Node}};
        error:{erpc, timeout} -> {error, timeout};
        Class:Reason -> {error, {proxy_down, {Class, Reason}}}
    end.

%% Internal.

wait(Node, ReqId, Pid, Deadline) ->
    receive
        {spawn_reply, ReqId, ok, Proxy} ->
            wait(Node, ReqId, Proxy, Deadline);
        %% With a failed spawn no 'DOWN' follows.
        {spawn_reply, ReqId, error, Reason} ->
            {error, down(Node, Reason)};
        {'DOWN', ReqId, process, _, {?RESULT, Result}} ->
            Result;
        {'DOWN', ReqId, process, _, Reason} ->
            {error, down(Node, Reason)}
    after pyport_calls:after_ms(Deadline) ->
        case pyport_calls:after_ms(Deadline) of
            %% Only a chunk of a longer wait has passed.
            Left when Left =/= 0 -> wait(Node, ReqId, Pid, Deadline);
            0 -> timed_out(ReqId, Pid)
        end
    end.

down(Node, noconnection) -> {nodedown, Node};
down(_, Reason) -> {proxy_down, Reason}.

timed_out(ReqId, Pid) ->
    receive
        %% Arrived just now: use it rather than kill a finished proxy.
        {'DOWN', ReqId, process, _, {?RESULT, Result}} -> Result
    after 0 ->
        erlang:demonitor(ReqId, [flush]),
        stop_proxy(ReqId, Pid),
        {error, timeout}
    end.

%% Killing the proxy is what cancels its task on the other node (the
%% loop's worker there sees its caller die).
stop_proxy(ReqId, undefined) ->
    case erlang:spawn_request_abandon(ReqId) of
        %% Should it still start, it gets the exit signal `abandoned`.
        true ->
            ok;
        false ->
            receive
                {spawn_reply, ReqId, ok, Pid} -> exit(Pid, kill);
                {spawn_reply, ReqId, error, _} -> ok
            after 0 -> ok
            end
    end;
stop_proxy(_, Pid) ->
    exit(Pid, kill).
