%% The target node's side of a remote task (docs/cluster.md).
%%
%% The caller's courier (pyport_cluster_call, a process on the caller's
%% node that stands for the caller here) spawns a proxy with
%% erlang:spawn_request/5 and a monitor. The proxy submits the task to a local loop as an ordinary
%% caller of this node's pool (py_event_loop:run/5: the deadline travels
%% to Python, a restarting loop is waited for, a port crash is
%% `python_exit`), and exits with `{py_cluster_result, Result}`: the
%% caller's monitor delivers the result in its 'DOWN' message, the way
%% OTP's erpc returns results, so nothing is left to route back and a
%% caller that gave up (demonitor) never sees it.
%%
%% The caller's promises hold because the proxy is the task's caller on
%% this node: when the proxy dies, the loop's worker cancels its task.
%%   - caller death: a guard linked to the proxy monitors the caller and
%%     exits, taking the proxy with it;
%%   - the connection to the caller's node lost: the same monitor says
%%     `noconnection`, the same exit;
%%   - the caller's deadline passed: it kills its courier, which the
%%     guard sees go as above; Python had the deadline too.
-module(pyport_cluster_proxy).

%% API (called on this node by remote callers).
-export([start/3]).
-export([spawn_task/2]).

%% Internal, spawned by start/3.
-export([guard/1]).

%% The exit reason that carries the result.
-define(RESULT, py_cluster_result).

-type call() :: {py_event_loop:py_name(), py_event_loop:py_name(), list(),
                 py_event_loop:kwargs()}.
%% The loop: chosen by the caller's node (by key, or least loaded from
%% the published figures), or here, from this node's current loads.
-type target() :: pos_integer() | least_loaded.
-type job() :: {run, call(), timeout()}.
-export_type([call/0, target/0, job/0]).

%% API.

%% The body of the proxy process; never returns.
-spec start(pid(), target(), job()) -> no_return().
start(Caller, Target, {run, {Module, Func, Args, Kwargs}, Timeout}) ->
    Guard = spawn_link(?MODULE, guard, [Caller]),
    Result = case loop(Target) of
                 {ok, Index} ->
                     pyport_task:run_on({fixed, Index}, Module, Func, Args,
                                          #{timeout => Timeout, kwargs => Kwargs});
                 {error, _} = Error ->
                     Error
             end,
    %% The guard would otherwise get the result as its exit signal.
    unlink(Guard),
    exit(Guard, kill),
    exit({?RESULT, Result}).

%% spawn_task, run here through erpc: a spawned task is not tied to its
%% caller, so there is nothing to guard.
-spec spawn_task(target(), call()) -> ok | {error, py_event_loop:reason()}.
spawn_task(Target, {Module, Func, Args, Kwargs}) ->
    case loop(Target) of
        {ok, Index} -> pyport_task:spawn_on({fixed, Index}, Module, Func, Args, Kwargs);
        {error, _} = Error -> Error
    end.

%% Exits (and so kills the linked proxy, which does not trap exits) when
%% the caller is gone or unreachable.
-spec guard(pid()) -> no_return().
guard(Caller) ->
    MRef = erlang:monitor(process, Caller),
    receive
        {'DOWN', MRef, process, Caller, Reason} -> exit({caller_down, Reason})
    end.

%% Internal.

loop(Index) when is_integer(Index) ->
    {ok, Index};
loop(least_loaded) ->
    case pyport_cluster_route:least_loaded(
           [{{node(), I}, Load, 0} || {I, Load} <- pyport_calls:loads()], node()) of
        {_, Index} -> {ok, Index};
        none -> {error, loop_unavailable}
    end.
