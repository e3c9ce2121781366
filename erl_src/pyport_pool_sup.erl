%% One named pool (py_pool): its server, which owns the pool's loop
%% registry and settings, then its loops. rest_for_one, as in pyport_sup:
%% the workers must register again in a fresh registry.
-module(pyport_pool_sup).
-behaviour(supervisor).

%% API.
-export([start_link/3]).

%% supervisor.
-export([init/1]).

%% API.

-spec start_link(atom(), pos_integer(), map()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Size, Settings) ->
    supervisor:start_link(?MODULE, {Pool, Size, Settings}).

%% supervisor.

-spec init({atom(), pos_integer(), map()})
    -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Pool, Size, Settings}) ->
    Flags = #{strategy => rest_for_one, intensity => 3, period => 60},
    {ok, {Flags,
          [#{id => py_event_loop_pool,
             start => {py_event_loop_pool, start_link, [{Pool, Size, Settings}]},
             type => worker,
             shutdown => 5000},
           #{id => pyport_loop_sup,
             start => {pyport_loop_sup, start_link, [{Pool, Size}]},
             type => supervisor,
             shutdown => infinity}]}}.
