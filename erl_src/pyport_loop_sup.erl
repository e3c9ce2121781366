%% One pyport_worker per loop. one_for_one: a crashed port takes down
%% its own loop only; the others keep serving while it restarts.
-module(pyport_loop_sup).
-behaviour(supervisor).

%% API.
-export([start_link/1]).

%% supervisor.
-export([init/1]).

%% API.

-spec start_link(pos_integer() | {atom(), pos_integer()}) -> {ok, pid()} | {error, term()}.
start_link(NumLoops) when is_integer(NumLoops) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, NumLoops);
start_link({Pool, NumLoops}) ->
    %% A named pool's loops (pyport_pool_sup): not registered, loop ids {Pool, I}.
    supervisor:start_link(?MODULE, {Pool, NumLoops}).

%% supervisor.

-spec init(pos_integer() | {atom(), pos_integer()})
    -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Pool, NumLoops}) ->
    %% py_pool:restart_loop/1 finds this supervisor in the pool's table.
    true = ets:insert(Pool, {loop_sup, self()}),
    {ok, {Flags, Children}} = init(NumLoops),
    {ok, {Flags, [C#{id := {pyport_worker, {Pool, I}},
                     start := {pyport_worker, start_link, [{Pool, I}]}}
                  || #{id := {pyport_worker, I}} = C <- Children]}};
init(NumLoops) ->
    %% A crashing Python process is expected now and then (that is what
    %% the isolation is for), so up to 10 restarts in 5 s are absorbed. A
    %% port that fails at start-up burns through that in well under a
    %% second, and then this supervisor gives up instead of spinning.
    Flags = #{strategy => one_for_one, intensity => 10, period => 5},
    Children = [#{id => {pyport_worker, Index},
                  start => {pyport_worker, start_link, [Index]},
                  restart => permanent,
                  %% Above pyport_worker's 2 s stop grace.
                  shutdown => 5000,
                  type => worker}
                || Index <- lists:seq(1, NumLoops)],
    {ok, {Flags, Children}}.
