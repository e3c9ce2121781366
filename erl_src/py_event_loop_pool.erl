%% N event loops, one port each. A caller's PID picks its loop, so every
%% task from one process goes to the same loop and starts in submission
%% order, while different processes spread over all loops.
%%
%% The process behind this module owns the loop registry (a public named
%% ETS table that callers read on every submission) and counts restarts.
%% It sits before pyport_loop_sup under a rest_for_one supervisor: if it
%% dies, the table goes with it and every worker restarts to re-register.
%%
%% While a loop's worker restarts, its entry reads `restarting`, and
%% callers wait here (await_loop/3) for the fresh port within their own
%% deadline, at most max_pending of them per loop; `loop_unavailable` only
%% when there is no such loop or the application is stopping.
-module(py_event_loop_pool).
-behaviour(gen_server).

%% The registry: {Index, pyport_calls:loop() | restarting} per loop, and
%% {num_loops, N}. Only this module writes it; readers go through
%% pyport_registry.
-define(PY_LOOP_REGISTRY, py_event_loops).  % pyport_registry:table(default)

%% API.
-export([run/3]).
-export([run/4]).
-export([create_task/3]).
-export([create_task/4]).
-export([create_task/5]).
-export([await/1]).
-export([await/2]).
-export([spawn_task/3]).
-export([spawn_task/4]).
-export([exec/1]).
-export([exec/2]).
-export([eval/1]).
-export([eval/2]).
-export([get_loop/0]).
-export([get_stats/0]).
-export([loop_index/2]).
-export([loads/0]).
-export([stream/3]).
-export([stream/4]).
-export([reload/1]).
%% Operations (docs/operations.md): named pools under the user's own
%% supervisor (py_pool), restarting one loop.
-export([child_spec/1]).
-export([restart_loop/1]).

%% Internal exports: pyport_sup starts the server.
-export([start_link/1]).

%% Internal exports: gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([code_change/3]).

-type loop_stats() :: #{index := pos_integer(),
                        worker := pid(),
                        port := port(),
                        os_pid := integer() | undefined,
                        pending := non_neg_integer(),
                        python := binary() | undefined,
                        mode := atom() | undefined,
                        restarts := non_neg_integer(),
                        atoms_created := non_neg_integer(),
                        handles := non_neg_integer(),
                        python_lib := binary() | undefined,
                        tasks := pyport_ops_stats:stats()}.
-type stats() :: #{num_loops := non_neg_integer(),
                   supported := boolean(),
                   restarts := non_neg_integer(),
                   pending := non_neg_integer(),
                   loops := [loop_stats()]}.
-export_type([stats/0, loop_stats/0]).

-record(state, {
    num_loops :: pos_integer(),
    %% `default`, or the name of a named pool (py_pool), whose registry is
    %% the ETS table of that name and whose loops are {Pool, Index}.
    pool = default :: atom(),
    table = ?PY_LOOP_REGISTRY :: atom(),
    %% Registrations per loop index: every one after the first is a restart.
    starts = #{} :: #{pos_integer() => pos_integer()},
    %% Worker monitors, so a dead worker's entry leaves the registry even
    %% when the worker was killed before it could clean up.
    workers = #{} :: #{reference() => {pos_integer(), pid()}},
    %% Callers waiting for a loop's fresh worker, with their deadlines.
    waiters = #{} :: #{pos_integer() => [{gen_server:from(), deadline()}]},
    %% How many may wait per loop: its max_pending when it last ran.
    bounds = #{} :: #{pos_integer() => pos_integer() | infinity},
    %% The timer of the next look at the OTP logger's level, and the level
    %% seen last.
    follow :: {reference(), logger:level() | all | none} | undefined
}).

%% How often the pool looks at the OTP logger's primary level.
-define(FOLLOW_MS, 200).

-type deadline() :: pyport_calls:deadline().

%% API.

-spec run(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result().
run(Module, Func, Args) ->
    run(Module, Func, Args, #{}).

-spec run(py_event_loop:py_name(), py_event_loop:py_name(), list(),
          py_event_loop:run_opts()) -> py_event_loop:result().
run(Module, Func, Args, Opts) ->
    pyport_task:run_on(my_route(), Module, Func, Args, Opts).

-spec create_task(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> reference().
create_task(Module, Func, Args) ->
    create_task(Module, Func, Args, #{}).

-spec create_task(py_event_loop:py_name(), py_event_loop:py_name(), list(),
                  py_event_loop:kwargs()) -> reference().
create_task(Module, Func, Args, Kwargs) ->
    create_task(Module, Func, Args, Kwargs, #{}).

%% create_task/4 with options (`result`, see py_event_loop:run_opts()).
-spec create_task(py_event_loop:py_name(), py_event_loop:py_name(), list(),
                  py_event_loop:kwargs(), py_event_loop:task_opts()) -> reference().
create_task(Module, Func, Args, Kwargs, Opts) ->
    pyport_task:create_on(my_route(), Module, Func, Args, Kwargs, Opts).

%% A reference knows its loop, so await is the same for the pool and for
%% a single loop.
-spec await(reference()) -> py_event_loop:result().
await(Ref) ->
    py_event_loop:await(Ref).

-spec await(reference(), timeout()) -> py_event_loop:result().
await(Ref, Timeout) ->
    py_event_loop:await(Ref, Timeout).

-spec spawn_task(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason()}.
spawn_task(Module, Func, Args) ->
    spawn_task(Module, Func, Args, #{}).

-spec spawn_task(py_event_loop:py_name(), py_event_loop:py_name(), list(),
                 py_event_loop:kwargs())
    -> ok | {error, py_event_loop:reason()}.
spawn_task(Module, Func, Args, Kwargs) ->
    pyport_task:spawn_on(my_route(), Module, Func, Args, Kwargs).

%% py_event_loop:exec/eval on the caller's loop. Note that what exec
%% defines lives on that loop only (other processes may use other loops).
-spec exec(py_event_loop:source()) -> ok | {error, py_event_loop:reason()}.
exec(Code) ->
    exec(Code, #{}).

-spec exec(py_event_loop:source(), py_event_loop:source_opts())
    -> ok | {error, py_event_loop:reason()}.
exec(Code, Opts) ->
    py_event_loop:exec(my_loop(), Code, Opts).

-spec eval(py_event_loop:source()) -> py_event_loop:result().
eval(Expr) ->
    eval(Expr, #{}).

-spec eval(py_event_loop:source(), py_event_loop:source_opts())
    -> py_event_loop:result().
eval(Expr, Opts) ->
    py_event_loop:eval(my_loop(), Expr, Opts).

%% A stream (docs/streams.md) on the caller's loop, owned by the caller.
-spec stream(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_stream:stream().
stream(Module, Func, Args) ->
    stream(Module, Func, Args, #{}).

-spec stream(py_event_loop:py_name(), py_event_loop:py_name(), list(),
             py_stream:options()) -> py_stream:stream().
stream(Module, Func, Args, Opts) ->
    py_event_loop:stream(my_loop(), Module, Func, Args, Opts).

%% The calling process's loop, for the explicit-loop functions of
%% py_event_loop.
-spec get_loop() -> {ok, py_event_loop:loop()} | {error, not_started}.
get_loop() ->
    case num_loops() of
        undefined -> {error, not_started};
        _ -> {ok, my_loop()}
    end.

-spec get_stats() -> stats().
get_stats() ->
    pyport_registry:stats(default).

%% Pending tasks per loop, `restarting` for a loop between two ports,
%% read from the registry without a call to the pool: the load figure
%% py_cluster publishes; [] when the application is not running.
-spec loads() -> [{pos_integer(), non_neg_integer() | restarting}].
loads() ->
    pyport_calls:loads().

%% Reloads Python module Module (`importlib.reload`) on every loop that has
%% imported it, so that new source takes effect pool-wide; loops that have
%% not imported it import the new source when they first need it.
%% {error, [{Index, Reason}]} names the loops where it failed (e.g. a
%% SyntaxError in the new source: that loop keeps the old module).
-spec reload(py_event_loop:py_name())
    -> ok | {error, [{pos_integer(), py_event_loop:reason()}]}.
reload(Module) ->
    case num_loops() of
        undefined -> {error, [{1, loop_unavailable}]};
        N -> reload(Module, [{pyport_loop, I} || I <- lists:seq(1, N)])
    end.

-spec loop_index(pid(), pos_integer()) -> pos_integer().
loop_index(Pid, NumLoops) when is_pid(Pid), is_integer(NumLoops),
                               NumLoops > 0 ->
    pyport_registry:loop_index(Pid, NumLoops).

%% Internal API.

-spec start_link(pos_integer() | {atom(), pos_integer(), map()})
    -> {ok, pid()} | {error, term()}.
start_link(NumLoops) when is_integer(NumLoops) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, NumLoops, []);
start_link({Pool, NumLoops, Config}) ->
    %% A named pool's server is registered under the pool's name.
    gen_server:start_link({local, Pool}, ?MODULE, {Pool, NumLoops, Config}, []).

%% A supervisor child spec for a named pool (py_pool:child_spec/1).
-spec child_spec(map()) -> supervisor:child_spec().
child_spec(Opts) ->
    py_pool:child_spec(Opts).

%% Stops the port of one loop gracefully (Python cancels its tasks) and
%% waits until its fresh port is ready (py_pool:restart_loop/1).
-spec restart_loop(py_event_loop:loop()) -> ok | {error, term()}.
restart_loop(Loop) ->
    py_pool:restart_loop(Loop).

%% gen_server.

-spec init(pos_integer() | {atom(), pos_integer(), map()}) -> {ok, #state{}}.
init({Pool, NumLoops, Config}) ->
    %% A named pool: its settings are read by its workers from its table
    %% (pyport_config:loop/1), its atom budgets kept like the default's.
    _ = ets:new(Pool, [named_table, public, set, {read_concurrency, true}]),
    true = ets:insert(Pool, [{num_loops, NumLoops}, {config, Config}]),
    ok = pyport_atoms:init_pool(Pool, NumLoops),
    ok = pyport_registry:register_pool(Pool),
    {ok, following(#state{num_loops = NumLoops, pool = Pool, table = Pool})};
init(NumLoops) ->
    _ = ets:new(?PY_LOOP_REGISTRY,
                [named_table, public, set, {read_concurrency, true}]),
    true = ets:insert(?PY_LOOP_REGISTRY, {num_loops, NumLoops}),
    {ok, following(#state{num_loops = NumLoops})}.

-spec handle_call(term(), gen_server:from(), #state{})
    -> {reply, term(), #state{}}.
handle_call({register_loop, Loop},
            _From, #state{starts = Starts, workers = Workers, waiters = Waiters,
                          bounds = Bounds, table = Table} = State) ->
    Index = local_index(pyport_calls:index(Loop)),
    Pid = pyport_calls:worker(Loop),
    Max = pyport_calls:max_pending(Loop),
    true = ets:insert(Table, {Index, Loop}),
    MRef = erlang:monitor(process, Pid),
    {Waiting, Rest} = case maps:take(Index, Waiters) of
                          error -> {[], Waiters};
                          Taken -> Taken
                      end,
    %% Callers that gave up meanwhile no longer listen: the replies to
    %% them are dropped by the runtime.
    _ = [gen_server:reply(From, {ok, Loop}) || {From, _} <- Waiting],
    {reply, ok,
     State#state{starts = maps:update_with(Index, fun(N) -> N + 1 end, 1,
                                           Starts),
                 workers = Workers#{MRef => {Index, Pid}},
                 waiters = Rest,
                 bounds = Bounds#{Index => Max}}};
handle_call({await_loop, Index, Dead, Deadline}, From, #state{table = Table} = State) ->
    case ets:lookup(Table, Index) of
        [{Index, restarting}] ->
            wait_for_loop(Index, From, Deadline, State);
        [{Index, Loop}] when Dead =:= none ->
            {reply, {ok, Loop}, State};
        [{Index, Loop}] ->
            case pyport_calls:worker(Loop) of
                Dead -> wait_for_loop(Index, From, Deadline, State);
                _ -> {reply, {ok, Loop}, State}
            end;
        [{Index, _}] ->
            %% Restarting, or the dead worker whose 'DOWN' is on its way.
            wait_for_loop(Index, From, Deadline, State);
        [] ->
            {reply, {error, loop_unavailable}, State}
    end;
handle_call({stopping, Index}, _From, #state{table = Table} = State) ->
    _ = case ets:lookup(Table, Index) of
            [{Index, restarting}] -> true;
            [{Index, _Loop}] -> ets:insert(Table, {Index, restarting});
            _ -> true
        end,
    {reply, ok, State};
handle_call(get_stats, _From, State) ->
    {reply, stats(State), State};
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'DOWN', MRef, process, Pid, _}, #state{workers = Workers, table = Table} = State) ->
    case maps:take(MRef, Workers) of
        {{Index, Pid}, Rest} ->
            %% Only if no successor has registered in the meantime; this
            %% process is the registry's only writer, so no race.
            case ets:lookup(Table, Index) of
                [{Index, restarting}] ->
                    ok;
                [{Index, Loop}] ->
                    %% Its supervisor starts the next one; callers wait
                    %% for it (pyport_registry:await_loop/3).
                    _ = pyport_calls:worker(Loop) =:= Pid
                        andalso ets:insert(Table, {Index, restarting}),
                    ok;
                _ ->
                    ok
            end,
            {noreply, State#state{workers = Rest}};
        error ->
            {noreply, State}
    end;
handle_info({timeout, TRef, follow_log_level}, #state{follow = {TRef, _}} = State) ->
    {noreply, following(State)};
handle_info(_Info, State) ->
    {noreply, State}.

%% The state record is unchanged across versions so far.
-spec code_change(term(), #state{}, term()) -> {ok, #state{}}.
code_change(_OldVsn, State, _Extra) ->
    {ok, State}.

%% Internal.

%% The OTP logger's primary level, looked at every ?FOLLOW_MS: when it
%% changes, every worker of the pool is told, and those whose
%% python_log_level is unset pass it on to Python (there is no logger
%% callback for a change of the primary level, hence the poll).
following(#state{follow = Follow, workers = Workers} = State) ->
    #{level := Level} = logger:get_primary_config(),
    case Follow of
        {_, Level} -> ok;
        undefined -> ok;
        {_, _} -> _ = [gen_server:cast(Pid, {otp_log_level, Level})
                       || {_, Pid} <- maps:values(Workers)],
                  ok
    end,
    TRef = erlang:start_timer(?FOLLOW_MS, self(), follow_log_level),
    State#state{follow = {TRef, Level}}.

local_index(Index) when is_integer(Index) -> Index;
local_index({_, Index}) -> Index.

%% Reloads Python module Module (importlib.reload) on each of Loops, in
%% parallel, where it is loaded; a loop that has not imported it has
%% nothing to reload. {error, [{Index, Reason}]} lists the loops where it
%% failed (a syntax error in the new source, a loop unavailable).
reload(Module, Loops) when is_atom(Module); is_binary(Module) ->
    Name = if is_atom(Module) -> atom_to_binary(Module, utf8);
              true -> Module
           end,
    Refs = [{Index, py_event_loop:create_task(Loop, 'erlang._compat', reload_module,
                                              [Name], #{})}
            || {pyport_loop, Index} = Loop <- Loops],
    case [{Index, Reason}
          || {Index, Ref} <- Refs,
             {error, Reason} <- [py_event_loop:await(Ref, 30000)]] of
        [] -> ok;
        Failed -> {error, Failed}
    end;
reload(Module, _) ->
    error({badarg, {module, Module}}).

%% The loop id of index I in the pool: the default pool's are integers.
loop_id(#state{pool = default}, I) -> I;
loop_id(#state{pool = Pool}, I) -> {Pool, I}.

wait_for_loop(Index, From, Deadline, #state{waiters = Waiters, bounds = Bounds} = State) ->
    Now = erlang:monotonic_time(millisecond),
    %% Waiters whose deadline passed have stopped listening.
    Live = [W || {_, D} = W <- maps:get(Index, Waiters, []), D =:= infinity orelse D > Now],
    case maps:get(Index, Bounds, infinity) of
        Max when is_integer(Max), length(Live) >= Max ->
            {reply, {error, overloaded}, State#state{waiters = Waiters#{Index => Live}}};
        _ ->
            {noreply, State#state{waiters = Waiters#{Index => [{From, Deadline} | Live]}}}
    end.

num_loops() ->
    pyport_registry:num_loops().

%% A task runs on the loop of the object handles among its arguments
%% (pyport_handle:task_opts/4), otherwise on the caller's.
my_route() ->
    {default, pyport_registry:caller_loop(default)}.

my_loop() ->
    {pyport_loop, pyport_registry:caller_loop(default)}.

stats(#state{num_loops = N, starts = Starts} = State) ->
    Loops = [loop_stats(loop_id(State, Index), Starts) || Index <- lists:seq(1, N)],
    Live = [L || #{} = L <- Loops],
    #{num_loops => N,
      supported => true,
      restarts => lists:sum([S - 1 || S <- maps:values(Starts)]),
      pending => lists:sum([P || #{pending := P} <- Live]),
      loops => Live}.

loop_stats(Id, Starts) ->
    Index = local_index(Id),
    case pyport_registry:lookup(Id) of
        {ok, Loop} ->
            #{worker := W, port := Port, os_pid := OsPid, pending := Pending,
              info := Info, tasks := Tasks} = pyport_calls:describe(Loop),
            #{index => Index,
              worker => W,
              port => Port,
              os_pid => OsPid,
              pending => Pending,
              python => maps:get(python, Info, undefined),
              mode => maps:get(mode, Info, undefined),
              restarts => maps:get(Index, Starts, 1) - 1,
              %% New atoms its frames created since the application
              %% started (bounded by max_atoms, see pyport_atoms).
              atoms_created => pyport_atoms:created(Id),
              %% Live object handles (pyport_handle).
              handles => pyport_handle:count(pyport_calls:handles(Loop)),
              %% The loaded libpython and task timings (pyport_ops_stats).
              python_lib => maps:get(python_lib, Info, undefined),
              tasks => Tasks};
        _ ->
            %% Between a crash and the restart.
            down
    end.
