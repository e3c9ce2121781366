%% One pool across an Erlang cluster (docs/cluster.md): the loops of every
%% node whose pyport application is running and in the same cluster pool
%% (`pg` group), reached over Erlang distribution.
%%
%% Every function takes a route in its options:
%%   #{node => Node}  that node's pool picks the loop (this node: the
%%                    caller's loop, as py_event_loop_pool; another node:
%%                    its least-loaded loop);
%%   #{node => any}   (the default) the least-loaded loop of the cluster,
%%                    from the loads each node publishes, this node's
%%                    loops preferred at equal load;
%%   #{key => Term}   one loop per key (rendezvous hashing over the
%%                    cluster's loops), stable while membership is.
%% A task on this node runs exactly as through py_event_loop; on another
%% node through a proxy there (pyport_cluster_proxy, pyport_cluster_call), with
%% the same promises: the deadline reaches Python, a dead caller's task
%% is cancelled, and a lost node is `{error, {nodedown, Node}}` at once.
%%
%% On a single node, or without distribution, the cluster is this node.
-module(py_cluster).

%% API.
-export([run/3]).
-export([run/4]).
-export([create_task/3]).
-export([create_task/4]).
-export([await/1]).
-export([await/2]).
-export([spawn_task/3]).
-export([spawn_task/4]).
-export([task_node/1]).
-export([route/1]).
-export([nodes/0]).
-export([loads/0]).

-type route_opts() :: #{node => node() | any, key => term()}.
-type run_opts() :: #{timeout => timeout(), kwargs => py_event_loop:kwargs(),
                      node => node() | any, key => term()}.
-type task_opts() :: #{kwargs => py_event_loop:kwargs(),
                       node => node() | any, key => term()}.
%% A task made by create_task/3,4: it names the node it runs on. Treat
%% it as opaque apart from task_node/1.
-type task() :: {py_cluster_task, node(), reference()}.
%% Where a route leads: a node and its loop, or `pool` when that node's
%% pool picks (node routes).
-type place() :: {node(), pos_integer() | pool}.
-type reason() :: pyport_cluster_call:reason() | {not_member, node()}.
-type result() :: {ok, term()} | {error, reason()}.
-export_type([route_opts/0, run_opts/0, task_opts/0, task/0, place/0,
              reason/0, result/0]).

-define(DEFAULT_TIMEOUT, 5000).
%% create_task's own entries in the caller's process dictionary.
-define(KEY(Ref), {?MODULE, Ref}).

%% API.

-spec run(py_event_loop:py_name(), py_event_loop:py_name(), list()) -> result().
run(Module, Func, Args) ->
    run(Module, Func, Args, #{}).

-spec run(py_event_loop:py_name(), py_event_loop:py_name(), list(), run_opts())
    -> result().
run(Module, Func, Args, Opts) ->
    options(Opts, [timeout, kwargs, node, key]),
    Timeout = pyport_task:check_timeout(maps:get(timeout, Opts, ?DEFAULT_TIMEOUT)),
    Call = call(Module, Func, Args, Opts),
    case place(Opts, true) of
        {ok, {Node, Loop}} when Node =:= node() ->
            local_run(Loop, Call, Timeout);
        {ok, {Node, Loop}} ->
            pyport_cluster_call:run(Node, target(Loop), Call, Timeout,
                                pyport_calls:deadline(Timeout));
        {error, _} = Error ->
            Error
    end.

-spec create_task(py_event_loop:py_name(), py_event_loop:py_name(), list()) -> task().
create_task(Module, Func, Args) ->
    create_task(Module, Func, Args, #{}).

%% Unlike py_event_loop_pool:create_task/4, the fourth argument is the
%% options (the route and `kwargs`), not the keyword arguments.
-spec create_task(py_event_loop:py_name(), py_event_loop:py_name(), list(), task_opts())
    -> task().
create_task(Module, Func, Args, Opts) ->
    options(Opts, [kwargs, node, key]),
    {M, F, A, Kw} = Call = call(Module, Func, Args, Opts),
    case place(Opts, true) of
        {ok, {Node, pool}} when Node =:= node() ->
            {py_cluster_task, Node, py_event_loop_pool:create_task(M, F, A, Kw)};
        {ok, {Node, Index}} when Node =:= node() ->
            {py_cluster_task, Node,
             py_event_loop:create_task({pyport_loop, Index}, M, F, A, Kw)};
        {ok, {Node, Loop}} ->
            ReqId = pyport_cluster_call:start(Node, target(Loop), Call, infinity),
            put(?KEY(ReqId), remote),
            {py_cluster_task, Node, ReqId};
        {error, Reason} ->
            Ref = make_ref(),
            put(?KEY(Ref), {failed, Reason}),
            {py_cluster_task, failed_node(Opts), Ref}
    end.

-spec await(task()) -> result().
await(Task) ->
    await(Task, ?DEFAULT_TIMEOUT).

%% As py_event_loop:await/2: on timeout the task is cancelled where it
%% runs, and a late result never reaches the caller's mailbox.
-spec await(task(), timeout()) -> result().
await({py_cluster_task, Node, Ref}, Timeout) when is_atom(Node), is_reference(Ref) ->
    T = pyport_task:check_timeout(Timeout),
    case erase(?KEY(Ref)) of
        remote -> pyport_cluster_call:wait(Node, Ref, pyport_calls:deadline(T));
        {failed, Reason} -> {error, Reason};
        %% A task on this node, or unknown (py_event_loop says which).
        undefined -> py_event_loop:await(Ref, T)
    end;
await(Task, _) ->
    error({badarg, {task, Task}}).

-spec spawn_task(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, reason()}.
spawn_task(Module, Func, Args) ->
    spawn_task(Module, Func, Args, #{}).

-spec spawn_task(py_event_loop:py_name(), py_event_loop:py_name(), list(), task_opts())
    -> ok | {error, reason()}.
spawn_task(Module, Func, Args, Opts) ->
    options(Opts, [kwargs, node, key]),
    {M, F, A, Kw} = Call = call(Module, Func, Args, Opts),
    case place(Opts, true) of
        {ok, {Node, pool}} when Node =:= node() ->
            py_event_loop_pool:spawn_task(M, F, A, Kw);
        {ok, {Node, Index}} when Node =:= node() ->
            py_event_loop:spawn_task({pyport_loop, Index}, M, F, A, Kw);
        {ok, {Node, Loop}} ->
            pyport_cluster_call:spawn_task(Node, target(Loop), Call);
        {error, _} = Error ->
            Error
    end.

-spec task_node(task()) -> node().
task_node({py_cluster_task, Node, _}) -> Node.

%% Where a task with these options would go now (`any` is answered
%% without counting a task against the loop it names).
-spec route(route_opts()) -> {ok, place()} | {error, reason()}.
route(Opts) ->
    options(Opts, [node, key]),
    place(Opts, false).

%% The member nodes, this one included when its application runs.
-spec nodes() -> [node()].
nodes() ->
    pyport_cluster_registry:nodes().

%% Each member's loads as last published: pending tasks per loop, or
%% `restarting`.
-spec loads() -> #{node() => #{pos_integer() => pyport_cluster_registry:load()}}.
loads() ->
    lists:foldl(fun({{Node, I}, Load, _}, Acc) ->
                        maps:update_with(Node, fun(M) -> M#{I => Load} end,
                                         #{I => Load}, Acc)
                end, #{}, pyport_cluster_registry:loops()).

%% Internal.

%% Unknown keys are an error, so a misspelt `node` does not silently
%% route to any loop.
options(Opts, Known) when is_map(Opts) ->
    maps:foreach(fun(Key, Value) ->
                         lists:member(Key, Known) orelse error({badarg, {option, Key, Value}})
                 end, Opts),
    case Opts of
        #{node := _, key := _} -> error({badarg, {options, Opts}});
        #{node := N} when not is_atom(N) -> error({badarg, {node, N}});
        _ -> ok
    end;
options(Opts, _) ->
    error({badarg, {options, Opts}}).

call(Module, Func, Args, Opts) ->
    Kwargs = maps:get(kwargs, Opts, #{}),
    ok = pyport_task:check_call(Module, Func, Args, Kwargs),
    {Module, Func, Args, Kwargs}.

%% Count: whether the task is really sent (route/1 only looks).
place(#{key := Key}, Count) ->
    chosen(pyport_cluster_route:by_key(Key, pyport_cluster_registry:loops()), Count);
place(#{node := any}, Count) ->
    least_loaded(Count);
place(#{node := Node}, _) when Node =:= node() ->
    {ok, {Node, pool}};
place(#{node := Node}, _) ->
    case pyport_cluster_registry:is_member(Node) of
        true -> {ok, {Node, pool}};
        false -> {error, absent(Node)}
    end;
place(_, Count) ->
    least_loaded(Count).

%% This node's loops by their current pending count (a few ETS reads),
%% the others by what their nodes published plus what this node has sent
%% them in the current interval.
least_loaded(Count) ->
    Local = node(),
    Rows = [Row || {{Node, _}, _, _} = Row <- pyport_cluster_registry:loops(), Node =/= Local]
        ++ [{{Local, I}, Load, 0} || {I, Load} <- py_event_loop_pool:loads()],
    chosen(pyport_cluster_route:least_loaded(Rows, Local), Count).

chosen(none, _) ->
    %% No member at all: this node's application is not running.
    {error, loop_unavailable};
chosen({Node, Index} = Place, true) when Node =/= node() ->
    ok = pyport_cluster_registry:sent(Node, Index),
    {ok, Place};
chosen(Place, _) ->
    {ok, Place}.

%% A node that is connected but has no pool in this cluster is not the
%% same failure as one that is not there.
absent(Node) ->
    case lists:member(Node, erlang:nodes()) of
        true -> {not_member, Node};
        false -> {nodedown, Node}
    end.

failed_node(#{node := Node}) when Node =/= any -> Node;
failed_node(_) -> node().

local_run(pool, {M, F, A, Kw}, Timeout) ->
    py_event_loop_pool:run(M, F, A, #{timeout => Timeout, kwargs => Kw});
local_run(Index, {M, F, A, Kw}, Timeout) ->
    py_event_loop:run({pyport_loop, Index}, M, F, A, #{timeout => Timeout, kwargs => Kw}).

target(pool) -> least_loaded;
target(Index) -> Index.
