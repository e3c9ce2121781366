%% Named pools: more pools of loops besides the default one, each with its
%% own settings, run under the user's own supervisor
%% (`py_pool:child_spec(#{name => P, size => N, ...})`) or started with
%% start_link/1. A named pool's loops are `{pyport_loop, {P, I}}`; the
%% functions here route by the caller's pid within pool P, as
%% py_event_loop_pool does within the default pool, and the explicit-loop
%% functions of py_event_loop take those loop handles too.
%%
%% The pyport application must be running (it owns the callback registry
%% and the ports' private directory). The pool `default` names the
%% application's own pool.
-module(py_pool).


%% How often a restart_loop/1 waiting for another one's looks again.
-define(RESTART_POLL_MS, 20).

%% API.
-export([child_spec/1]).
-export([start_link/1]).
-export([run/4]).
-export([run/5]).
-export([create_task/4]).
-export([create_task/5]).
-export([spawn_task/4]).
-export([spawn_task/5]).
-export([get_loop/1]).
-export([get_stats/1]).
-export([loops/1]).
-export([restart_loop/1]).

-type pool() :: atom().
-export_type([pool/0]).

%% API.

%% A child spec (a supervisor of the pool's server and loops). Options:
%% `name` (required, an atom other than `default`), `size` (loops,
%% default 1), `loops` (per-loop settings) and any per-loop key of the
%% application environment (docs/operations.md). Unknown keys are
%% refused: erlang:error({badarg, ...}) here, so the mistake shows where
%% the spec is written.
-spec child_spec(map()) -> supervisor:child_spec().
child_spec(Opts) ->
    case pyport_config:pool(Opts) of
        {ok, Name, Size, Settings} ->
            #{id => {py_pool, Name},
              start => {pyport_pool_sup, start_link, [Name, Size, Settings]},
              type => supervisor,
              shutdown => infinity};
        {error, Reason} ->
            error({badarg, Reason})
    end.

%% Starts a named pool linked to the caller, outside a supervisor of the
%% caller's own (tests, shells).
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    case pyport_config:pool(Opts) of
        {ok, Name, Size, Settings} -> pyport_pool_sup:start_link(Name, Size, Settings);
        {error, _} = Error -> Error
    end.

-spec run(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result().
run(Pool, Module, Func, Args) ->
    run(Pool, Module, Func, Args, #{}).

-spec run(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
          py_event_loop:run_opts()) -> py_event_loop:result().
run(default, Module, Func, Args, Opts) ->
    %% As py_event_loop_pool:run/4: the handles among the arguments may
    %% pick the loop.
    pyport_task:run_on({default, pyport_registry:caller_loop(default)},
                         Module, Func, Args, Opts);
run(Pool, Module, Func, Args, Opts) ->
    py_event_loop:run(my_loop(Pool), Module, Func, Args, Opts).

-spec create_task(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> reference().
create_task(Pool, Module, Func, Args) ->
    create_task(Pool, Module, Func, Args, #{}).

-spec create_task(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
                  py_event_loop:kwargs()) -> reference().
create_task(default, Module, Func, Args, Kwargs) ->
    pyport_task:create_on({default, pyport_registry:caller_loop(default)},
                                 Module, Func, Args, Kwargs, #{});
create_task(Pool, Module, Func, Args, Kwargs) ->
    py_event_loop:create_task(my_loop(Pool), Module, Func, Args, Kwargs).

-spec spawn_task(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason()}.
spawn_task(Pool, Module, Func, Args) ->
    spawn_task(Pool, Module, Func, Args, #{}).

-spec spawn_task(pool(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
                 py_event_loop:kwargs()) -> ok | {error, py_event_loop:reason()}.
spawn_task(default, Module, Func, Args, Kwargs) ->
    pyport_task:spawn_on({default, pyport_registry:caller_loop(default)},
                                Module, Func, Args, Kwargs);
spawn_task(Pool, Module, Func, Args, Kwargs) ->
    py_event_loop:spawn_task(my_loop(Pool), Module, Func, Args, Kwargs).

%% The calling process's loop in Pool.
-spec get_loop(pool()) -> {ok, py_event_loop:loop()} | {error, not_started}.
get_loop(Pool) when is_atom(Pool) ->
    case pyport_registry:num_loops(Pool) of
        undefined -> {error, not_started};
        _ -> {ok, {pyport_loop, pyport_registry:caller_loop(Pool)}}
    end.

%% Every loop of Pool, e.g. to run something on each.
-spec loops(pool()) -> [py_event_loop:loop()].
loops(default) ->
    case pyport_registry:num_loops() of
        undefined -> [];
        N -> [{pyport_loop, I} || I <- lists:seq(1, N)]
    end;
loops(Pool) ->
    case pyport_registry:num_loops(Pool) of
        undefined -> [];
        N -> [{pyport_loop, {Pool, I}} || I <- lists:seq(1, N)]
    end.

%% py_event_loop_pool:get_stats/0 of Pool.
-spec get_stats(pool()) -> py_event_loop_pool:stats() | {error, not_started}.
get_stats(Pool) when is_atom(Pool) ->
    pyport_registry:stats(Pool).

%% Stops the loop's port gracefully (Python cancels its tasks; their
%% callers get `cancelled`) and has its supervisor start a fresh one; returns
%% when that one is ready. Callers meanwhile wait for it as for any restart.
%% A fresh port that cannot start leaves the loop stopped and returns the
%% reason (logged too); restart_loop/1 again retries.
%%
%% Serialised per loop: a call made while another restarts the same loop
%% waits for that restart and shares its fresh port (`ok` once it is up);
%% should that restart have failed, it restarts the loop itself.
-spec restart_loop(py_event_loop:loop()) -> ok | {error, term()}.
restart_loop({pyport_loop, _} = Loop) ->
    Id = py_event_loop:loop_index_check(Loop),
    Lock = {{?MODULE, restart_loop, Id}, self()},
    case global:set_lock(Lock, [node()], 0) of
        true ->
            try restart(Id) after global:del_lock(Lock, [node()]) end;
        false ->
            %% The lock goes with its holder, should that die.
            ok = await_unlocked(Lock),
            case pyport_registry:lookup(Id) of
                {ok, _} -> ok;
                _ -> restart_loop(Loop)
            end
    end;
restart_loop(Other) ->
    error({badarg, {loop, Other}}).

%% Internal.

restart(Id) ->
    case loop_sup(Id) of
        {ok, Sup} ->
            ChildId = {pyport_worker, Id},
            ok = pyport_registry:stopping(Id),
            case supervisor:terminate_child(Sup, ChildId) of
                ok ->
                    case supervisor:restart_child(Sup, ChildId) of
                        {ok, _} ->
                            ok;
                        {error, Reason} ->
                            logger:error("pyport loop ~p: restart_loop failed, the loop "
                                         "stays stopped: ~tp", [Id, Reason],
                                         #{pyport_loop => Id}),
                            {error, Reason}
                    end;
                {error, not_found} ->
                    {error, loop_unavailable}
            end;
        error ->
            {error, loop_unavailable}
    end.

%% A restart of a loop takes seconds at most; polling costs nothing that
%% matters and needs no process to keep the waiters.
await_unlocked(Lock) ->
    timer:sleep(?RESTART_POLL_MS),
    case global:set_lock(Lock, [node()], 0) of
        true -> true = global:del_lock(Lock, [node()]), ok;
        false -> await_unlocked(Lock)
    end.

loop_sup(Index) when is_integer(Index) ->
    case whereis(pyport_loop_sup) of
        undefined -> error;
        Sup -> {ok, Sup}
    end;
loop_sup({Pool, _}) ->
    try ets:lookup(Pool, loop_sup) of
        [{loop_sup, Sup}] -> {ok, Sup};
        [] -> error
    catch
        error:badarg -> error
    end.

my_loop(Pool) when is_atom(Pool) ->
    %% Not started: the task functions report loop_unavailable.
    {pyport_loop, pyport_registry:caller_loop(Pool)};
my_loop(Pool) ->
    error({badarg, {pool, Pool}}).
