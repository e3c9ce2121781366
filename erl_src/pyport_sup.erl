%% rest_for_one: the pool owns the loop registry, so when it restarts the
%% workers must restart too and register again; a worker crash touches
%% nothing but its own loop (see pyport_loop_sup). The callback registry
%% (py_callback) comes first, so that neither restart loses callbacks.
-module(pyport_sup).
-behaviour(supervisor).

%% API.
-export([start_link/1]).

%% supervisor.
-export([init/1]).

%% API.

-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(NumLoops) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, NumLoops).

%% supervisor.

-spec init(pos_integer())
    -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(N) ->
    %% A loop supervisor that gave up (a port that cannot start) gets a
    %% few more chances, then the application stops rather than retrying
    %% forever.
    Flags = #{strategy => rest_for_one, intensity => 3, period => 60},
    Children = [
        %% First: a restart of the pool or of the loops keeps the
        %% registered callbacks.
        #{id => py_callback,
          start => {py_callback, start_link, []},
          type => worker,
          shutdown => 5000},
        #{id => py_event_loop_pool,
          start => {py_event_loop_pool, start_link, [N]},
          type => worker,
          shutdown => 5000},
        #{id => pyport_loop_sup,
          start => {pyport_loop_sup, start_link, [N]},
          type => supervisor,
          shutdown => infinity},
        %% Last: the cluster's view of the loops (docs/cluster.md). Its
        %% `pg` scope, then the member that joins it and publishes this
        %% node's loads; neither restart touches a loop.
        #{id => py_cluster_scope,
          start => {pg, start_link, [pyport_cluster_registry:scope()]},
          type => worker,
          shutdown => 5000},
        #{id => pyport_cluster_registry,
          start => {pyport_cluster_registry, start_link, []},
          type => worker,
          shutdown => 5000},
        %% The shared state (py:state_*): after the loops, so that their
        %% restarts keep it.
        #{id => pyport_state,
          start => {pyport_state, start_link, []},
          type => worker,
          shutdown => 5000}
    ],
    {ok, {Flags, Children}}.
