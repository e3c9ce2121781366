%% Scenario 10 of `make bench` (pyport_bench): the cluster pool
%% (docs/cluster.md). This node and three peer nodes on this machine, one
%% loop each; what a remote task costs over a local one, and tasks/s from
%% 50 callers. On a 2-core machine the point is the overhead, not scaling.
-module(py_cluster_bench).

%% API.
-export([figures/2]).

-define(PY, bench_tasks).
-define(PEERS, 3).
-define(CALLERS, 50).
-define(EACH, 100).

%% API.

%% Figures in pyport_bench's format, Runs samples each.
-spec figures(pos_integer(), file:filename()) -> [map()].
figures(Runs, Py) ->
    Started = distribution(),
    ok = application:set_env(pyport, executable, Py),
    ok = application:set_env(pyport, event_loop_pool_size, 1),
    {ok, _} = application:ensure_all_started(pyport),
    Peers = [start_peer(Py) || _ <- lists:seq(1, ?PEERS)],
    Nodes = [N || {_, N} <- Peers],
    try
        ok = await_members([node() | Nodes]),
        Local = fun() -> sequential(#{node => node()}, 5000) end,
        Remote = fun() -> sequential(#{node => hd(Nodes)}, 2000) end,
        Pairs = [{measure(Local), measure(Remote)} || _ <- lists:seq(1, Runs)],
        [#{name => <<"10. cluster: sequential run, local node">>, unit => <<"tasks/s">>,
           higher_is_better => true, pyport => [L || {L, _} <- Pairs]},
         #{name => <<"10. cluster: sequential run, remote node">>, unit => <<"tasks/s">>,
           higher_is_better => true, pyport => [R || {_, R} <- Pairs]},
         #{name => <<"10. cluster: remote minus local, per task">>, unit => <<"us">>,
           higher_is_better => false,
           pyport => [1000000 / R - 1000000 / L || {L, R} <- Pairs]},
         #{name => <<"10. cluster: 50 callers x 100, least loaded, 4 nodes">>, unit => <<"tasks/s">>,
           higher_is_better => true,
           pyport => [measure(fun() -> concurrent(fun(_) -> #{} end) end)
                      || _ <- lists:seq(1, Runs)]},
         #{name => <<"10. cluster: 50 callers x 100, all remote">>, unit => <<"tasks/s">>,
           higher_is_better => true,
           pyport => [measure(fun() -> concurrent(fun(I) -> #{node => lists:nth(I rem ?PEERS + 1, Nodes)} end) end)
                      || _ <- lists:seq(1, Runs)]},
         #{name => <<"10. cluster: 50 callers x 100, by key, 4 nodes">>, unit => <<"tasks/s">>,
           higher_is_better => true,
           pyport => [measure(fun() -> concurrent(fun(I) -> #{key => I} end) end)
                      || _ <- lists:seq(1, Runs)]}]
    after
        _ = [catch peer:stop(P) || {P, _} <- Peers],
        ok = application:stop(pyport),
        _ = Started andalso net_kernel:stop()
    end.

%% Internal.

distribution() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start(list_to_atom("pyport_bench_" ++ os:getpid()),
                                       #{name_domain => shortnames}),
            true;
        _ ->
            false
    end.

start_peer(Py) ->
    Paths = lists:usort([filename:dirname(code:which(M)) || M <- [pyport_app, ?MODULE]]),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(),
                                    args => lists:append([["-pa", P] || P <- Paths])}),
    {ok, PythonPath} = application:get_env(pyport, python_path),
    ok = erpc:call(Node, application, load, [pyport]),
    [ok = erpc:call(Node, application, set_env, [pyport, K, V])
     || {K, V} <- [{executable, Py}, {event_loop_pool_size, 1}, {python_path, PythonPath}]],
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pyport]),
    {Peer, Node}.

await_members(Nodes) ->
    Deadline = erlang:monotonic_time(millisecond) + 10000,
    await_members(lists:sort(Nodes), Deadline).

await_members(Nodes, Deadline) ->
    case py_cluster:nodes() =:= Nodes andalso
        lists:sort(maps:keys(py_cluster:loads())) =:= Nodes of
        true ->
            ok;
        false ->
            erlang:monotonic_time(millisecond) < Deadline orelse error(cluster_not_formed),
            timer:sleep(50),
            await_members(Nodes, Deadline)
    end.

sequential(Opts, N) ->
    lists:foreach(fun(I) -> {ok, I} = py_cluster:run(?PY, echo, [I], Opts) end,
                  lists:seq(1, N)),
    N.

%% ?CALLERS processes, ?EACH tasks each, caller I routed by Route(I).
concurrent(Route) ->
    Parent = self(),
    Pids = [spawn_link(fun() ->
                Opts = Route(C),
                lists:foreach(fun(I) -> {ok, I} = py_cluster:run(?PY, echo, [I], Opts) end,
                              lists:seq(1, ?EACH)),
                Parent ! {done, self()}
            end) || C <- lists:seq(1, ?CALLERS)],
    [receive {done, P} -> ok end || P <- Pids],
    ?CALLERS * ?EACH.

measure(Fun) ->
    erlang:garbage_collect(),
    T0 = erlang:monotonic_time(microsecond),
    Count = Fun(),
    Count * 1000000 / max(1, erlang:monotonic_time(microsecond) - T0).
