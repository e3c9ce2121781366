%% `make soak`: a million tasks (SOAK_TASKS to scale) through the pool with
%% random faults, and the resources that must stay flat, before and after.
%%
%% Faults mixed in: about 1% of tasks raise, 1% time out (the deadline
%% cancels them in Python), and every ~20000th task SIGKILLs its own port
%% (at most one kill per second, which keeps every loop well under
%% pyport_loop_sup's 10 restarts in 5 s). As often, and sharing that
%% once-a-second allowance (some of them end the port), a task does what
%% hostile task code does (ct/python/pyport_hostile.py): raise a
%% BaseException, call sys.exit, fork and return in both processes, write
%% garbage on the port's output channel; whatever they get is tolerated
%% (any {ok, _} or {error, _}), a hang or a crash is not. And about every
%% 20000th task (at most one every 2 s) is a mass caller death: 200
%% processes each start a 30 s task and are killed at once, so their tasks
%% must be cancelled and drained. The features are in the mix too (about
%% 0.5% of tasks): streams (read to the end, or abandoned half-way by a
%% caller that exits), object handles (made, used, released or left to
%% the owner's exit), actors (started, called, stopped or killed) and
%% callbacks (Python calling back into Erlang, some of them slow enough
%% to be abandoned by the task's deadline). Callers are short-lived (each
%% submits SOAK_PER_CALLER tasks, then exits and is replaced), so the
%% worker's monitor table and the caller-death path are soaked too.
%%
%% Measured after a warm-up and again at the end: the BEAM's RSS, open fds,
%% process and port counts, ETS tables, erlang:memory(total), the OS
%% processes under the BEAM; each port's RSS and open fds; every loop's
%% pending and monitored table sizes and live handles. (Aliases have no
%% node-wide count: a leaked one would show as processes or memory.)
%% Exits non-zero if a result was malformed, a caller crashed, a table
%% did not drain back, or processes, ports, ETS tables, OS processes or
%% handles did not come back to what they were (every wait is bounded, so
%% a hang shows as a soak that never ends).
-module(soak).

-export([main/0]).


-define(H, pyport_ct_helpers).
-define(X, pyport_hostile).
-define(FH, pyport_features_hostile).
-define(S, pyport_stream).
-define(I, pyport_interop_helpers).
%% Processes that may come and go between the two measures (logger,
%% timers, the runtime's own).
-define(PROCESS_SLACK, 10).
-define(HOSTILE, [{raise_base, []}, {call_sys_exit, [3]}, {fork_and_return, []},
                  {forge_garbage, [<<"soak garbage">>]}]).
-define(MASS_DEATH_CALLERS, 200).
-define(OUTCOMES, [ok, python_error, timeout, python_exit, loop_unavailable,
                   worker_down, overloaded, cancelled, hostile_other, mass_deaths,
                   stream, handle, actor, callback, malformed]).
-define(CALLBACK, soak_callback).

-spec main() -> no_return().
main() ->
    Total = env_int("SOAK_TASKS", 1000000),
    Callers = env_int("SOAK_CALLERS", 64),
    PerCaller = env_int("SOAK_PER_CALLER", 1000),
    Loops = env_int("SOAK_LOOPS", 4),
    ok = application:load(pyport),
    Ct = filename:join(root(), "ct/python"),
    [ok = application:set_env(pyport, K, V)
     || {K, V} <- [{event_loop_pool_size, Loops}, {python_path, [Ct]},
                   {cancel_grace_ms, 2000}, {max_pending, 100000}]],
    logger:set_primary_config(level, critical),
    {ok, _} = application:ensure_all_started(pyport),
    %% Python's erlang.call(soak_callback, Ms) sleeps Ms and answers.
    ok = py_callback:register(?CALLBACK,
                              fun([Ms]) -> timer:sleep(Ms), Ms;
                                 (Other) -> Other
                              end),
    io:format("soak: ~b tasks, ~b concurrent callers (~b tasks each, then replaced), "
              "~b loops~n", [Total, Callers, PerCaller, Loops]),
    %% Warm-up: every loop imports its modules and reaches its working size.
    Warm = min(20000, max(Total div 50, 1000)),
    _ = run(Warm, Callers, PerCaller, false),
    settle(),
    Before = measure(),
    T0 = erlang:monotonic_time(millisecond),
    Outcomes = run(Total, Callers, PerCaller, true),
    Secs = (erlang:monotonic_time(millisecond) - T0) / 1000,
    settle(),
    After = measure(),
    report(Total, Secs, Outcomes, Before, After),
    halt(verdict(Outcomes, Before, After)).

%% -- the load ----------------------------------------------------------------

run(Total, Callers, PerCaller, Faults) ->
    Next = atomics:new(1, []),
    Counts = counters:new(length(?OUTCOMES), [write_concurrency]),
    LastKill = atomics:new(1, [{signed, true}]),
    atomics:put(LastKill, 1, erlang:monotonic_time(millisecond)),
    LastDeaths = atomics:new(1, [{signed, true}]),
    atomics:put(LastDeaths, 1, erlang:monotonic_time(millisecond)),
    Ctx = #{total => Total, next => Next, counts => Counts, per_caller => PerCaller,
            faults => Faults, last_kill => LastKill, last_deaths => LastDeaths},
    Progress = spawn_link(fun() -> progress(Next, Total, 0) end),
    MRefs = [spawn_caller(Ctx) || _ <- lists:seq(1, Callers)],
    wait_callers(MRefs, Ctx),
    unlink(Progress),
    exit(Progress, kill),
    maps:from_list([{O, counters:get(Counts, I)}
                    || {I, O} <- lists:zip(lists:seq(1, length(?OUTCOMES)), ?OUTCOMES)]).

spawn_caller(Ctx) ->
    {_, MRef} = spawn_monitor(fun() -> caller(Ctx, 0) end),
    MRef.

%% A caller ends after PerCaller tasks (replaced by a fresh one) or when
%% the work runs out (not replaced).
wait_callers([], _Ctx) ->
    ok;
wait_callers(MRefs, Ctx) ->
    receive
        {'DOWN', MRef, process, _, more} ->
            wait_callers([spawn_caller(Ctx) | lists:delete(MRef, MRefs)], Ctx);
        {'DOWN', MRef, process, _, done} ->
            wait_callers(lists:delete(MRef, MRefs), Ctx);
        {'DOWN', _, process, _, Other} ->
            io:format("soak: a caller crashed: ~p~n", [Other]),
            halt(3)
    end.

caller(#{per_caller := PerCaller}, PerCaller) ->
    exit(more);
caller(#{total := Total, next := Next, counts := Counts} = Ctx, Done) ->
    case atomics:add_get(Next, 1, 1) of
        N when N > Total ->
            exit(done);
        _ ->
            Result = one_task(Ctx),
            Outcome = classify(Result),
            counters:add(Counts, index(Outcome), 1),
            %% Say what was malformed (the verdict fails on it).
            Outcome =:= malformed andalso
                io:format("soak: malformed result: ~P~n", [Result, 20]),
            %% A sane client backs off while a loop restarts.
            Outcome =:= loop_unavailable andalso timer:sleep(10),
            caller(Ctx, Done + 1)
    end.

one_task(#{faults := Faults} = Ctx) ->
    R = rand:uniform(20000),
    if
        Faults, R =< 200 ->
            py_event_loop_pool:run(?H, raise_value_error, [<<"soak">>]);
        Faults, R =< 400 ->
            %% Python cancels it at the deadline; the caller stops waiting.
            py_event_loop_pool:run(?H, sleep_then, [10, late], #{timeout => 5});
        Faults, R =:= 401 ->
            maybe_kill(Ctx);
        Faults, R =:= 402 ->
            maybe_hostile(Ctx);
        Faults, R =:= 403 ->
            maybe_mass_death(Ctx);
        Faults, R =< 430 ->
            {feature, stream, stream_fault(R)};
        Faults, R =< 460 ->
            {feature, handle, handle_fault(R)};
        Faults, R =< 470 ->
            {feature, actor, actor_fault(R)};
        Faults, R =< 500 ->
            {feature, callback, callback_fault(R)};
        R =< 4000 ->
            Ref = py_event_loop_pool:create_task(?H, sleep_then, [0, R]),
            py_event_loop_pool:await(Ref, 30000);
        true ->
            py_event_loop_pool:run(?H, identity, [R], #{timeout => 30000})
    end.

%% Kills the caller's port from inside, at most once a second overall.
maybe_kill(#{last_kill := LastKill}) ->
    case allowed(LastKill, 1000) of
        true -> py_event_loop_pool:run(?H, kill_process, []);
        false -> py_event_loop_pool:run(?H, identity, [kill_skipped])
    end.

%% One hostile fixture, within the kills' allowance (some end the port).
maybe_hostile(#{last_kill := LastKill}) ->
    case allowed(LastKill, 1000) of
        true ->
            {F, A} = lists:nth(rand:uniform(length(?HOSTILE)), ?HOSTILE),
            {hostile, py_event_loop_pool:run(?X, F, A, #{timeout => 5000})};
        false ->
            py_event_loop_pool:run(?H, identity, [hostile_skipped])
    end.

%% Callers that die at once with long tasks pending, at most every 2 s.
maybe_mass_death(#{last_deaths := LastDeaths}) ->
    case allowed(LastDeaths, 2000) of
        true ->
            Self = self(),
            Pids = [spawn(fun() ->
                                  Ref = py_event_loop_pool:create_task(?X, nap, [30, never]),
                                  Self ! {submitted, self()},
                                  receive never -> Ref end
                          end) || _ <- lists:seq(1, ?MASS_DEATH_CALLERS)],
            [receive {submitted, P} -> ok after 30000 -> ok end || P <- Pids],
            [exit(P, kill) || P <- Pids],
            mass_deaths;
        false ->
            py_event_loop_pool:run(?H, identity, [deaths_skipped])
    end.

%% A stream read to its end, or abandoned half-way by a process that
%% exits (its generator must be closed and its alias gone).
stream_fault(R) when R rem 2 =:= 0 ->
    S = py_event_loop_pool:stream(?S, count, [20]),
    drain_stream(S, 0);
stream_fault(_) ->
    in_process(fun() ->
                       S = py_event_loop_pool:stream(?S, count, [1000]),
                       {ok, _} = py_stream:next(S, 30000),
                       {ok, abandoned}
               end).

drain_stream(S, N) ->
    case py_stream:next(S, 30000) of
        {ok, _} -> drain_stream(S, N + 1);
        done -> {ok, N};
        {error, _} = Error -> Error
    end.

%% A handle made and used, then released, or left to its owner's exit.
handle_fault(R) ->
    in_process(fun() ->
                       case py_event_loop_pool:run(?FH, counter_handle, []) of
                           {ok, H} ->
                               Result = py_obj:call(H, add, [1]),
                               R rem 2 =:= 0 andalso py_obj:release(H),
                               Result;
                           {error, _} = Error ->
                               Error
                       end
               end).

%% An actor started, called, and stopped or killed.
actor_fault(R) ->
    in_process(fun() ->
                       case py_actor:start(?FH, 'Echo', [], #{}) of
                           {ok, A} ->
                               Reply = try gen_server:call(A, R, 30000)
                                       catch exit:Reason -> {error, Reason}
                                       end,
                               exit(A, case R rem 2 of 0 -> kill; 1 -> shutdown end),
                               {ok, Reply};
                           {error, _} = Error ->
                               Error
                       end
               end).

%% Python calls back into Erlang; some callbacks outlast the task's
%% deadline and are abandoned.
callback_fault(R) when R rem 3 =:= 0 ->
    py_event_loop_pool:run(?I, call, [?CALLBACK, 2000], #{timeout => 20});
callback_fault(R) ->
    py_event_loop_pool:run(?I, async_call, [?CALLBACK, R rem 5], #{timeout => 30000}).

%% Fun's result, from a process that then exits (what it owns goes).
in_process(Fun) ->
    {Pid, MRef} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive
        {'DOWN', MRef, process, Pid, {result, Result}} -> Result;
        {'DOWN', MRef, process, Pid, Reason} -> {error, {crashed, Reason}}
    after 60000 ->
        exit(Pid, kill),
        {error, hung}
    end.

allowed(Last, IntervalMs) ->
    Now = erlang:monotonic_time(millisecond),
    Was = atomics:get(Last, 1),
    Now - Was >= IntervalMs andalso atomics:compare_exchange(Last, 1, Was, Now) =:= ok.

classify(mass_deaths) -> mass_deaths;
classify({feature, Kind, Result}) ->
    %% A feature fault's own answer: any {ok, _} or explicit {error, _}
    %% but a crash or a hang, which are malformed.
    case Result of
        {ok, _} -> Kind;
        {error, {crashed, _}} -> malformed;
        {error, hung} -> malformed;
        {error, _} -> Kind;
        _ -> malformed
    end;
classify({hostile, Result}) ->
    %% Until every hostile fault is handled, whatever explicit answer it
    %% gets is tolerated.
    case {classify(Result), Result} of
        {malformed, {error, _}} -> hostile_other;
        {Outcome, _} -> Outcome
    end;
classify({ok, _}) -> ok;
classify({error, {python, _, _, _}}) -> python_error;
classify({error, timeout}) -> timeout;
classify({error, {python_exit, _}}) -> python_exit;
classify({error, loop_unavailable}) -> loop_unavailable;
classify({error, {worker_down, _}}) -> worker_down;
classify({error, overloaded}) -> overloaded;
%% Collateral of a hostile fault on the same port: a port that sys.exit
%% ends cleanly cancels its other tasks (until that fault costs the task
%% only).
classify({error, cancelled}) -> cancelled;
classify(_) -> malformed.

index(Outcome) ->
    index(Outcome, ?OUTCOMES, 1).

index(O, [O | _], I) -> I;
index(O, [_ | Rest], I) -> index(O, Rest, I + 1).

progress(Next, Total, Last) ->
    timer:sleep(5000),
    Done = min(atomics:get(Next, 1), Total),
    Pct = Done * 100 div max(Total, 1),
    case Pct div 10 > Last div 10 of
        true -> io:format("soak: ~b% (~b tasks)~n", [Pct, Done]);
        false -> ok
    end,
    progress(Next, Total, max(Pct, Last)).

%% -- measuring ---------------------------------------------------------------

%% Lets the pool finish restarts and answers, and the node collect garbage.
settle() ->
    wait_for(fun() ->
                     #{loops := Ls, pending := P} = py_event_loop_pool:get_stats(),
                     P =:= 0 andalso length(Ls) =:= application:get_env(pyport, event_loop_pool_size, 0)
             end, 60000),
    timer:sleep(2000),
    [erlang:garbage_collect(P) || P <- processes()],
    timer:sleep(500).

wait_for(Fun, Timeout) when Timeout =< 0 ->
    Fun() orelse io:format("soak: the pool did not settle~n");
wait_for(Fun, Timeout) ->
    case Fun() of
        true -> true;
        false -> timer:sleep(100), wait_for(Fun, Timeout - 100)
    end.

measure() ->
    Beam = list_to_integer(os:getpid()),
    #{restarts := Restarts, loops := Loops, num_loops := NumLoops} =
        py_event_loop_pool:get_stats(),
    Tables = [{I, Pending, Monitored}
              || I <- lists:seq(1, NumLoops),
                 {ok, Loop} <- [pyport_registry:lookup(I)],
                 #{pending := Pending, monitored := Monitored}
                     <- [pyport_calls:describe(Loop)]],
    Handles = lists:sum([maps:get(handles, L, 0) || L <- Loops]),
    #{beam_rss_kb => rss_kb(Beam),
      beam_fds => fds(Beam),
      erlang_memory_kb => erlang:memory(total) div 1024,
      processes => erlang:system_info(process_count),
      ports => erlang:system_info(port_count),
      ets_tables => length(ets:all()),
      os_processes => length(descendants(Beam)),
      os_process_names => lists:sort([comm(P) || P <- descendants(Beam)]),
      handles => Handles,
      restarts => Restarts,
      loops => [#{index => I, os_pid => P, rss_kb => rss_kb(P), fds => fds(P)}
                || #{index := I, os_pid := P} <- lists:sort(Loops)],
      tables => Tables}.

rss_kb(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, S} ->
            {match, [Kb]} = re:run(S, <<"VmRSS:\\s+(\\d+)">>, [{capture, all_but_first, binary}]),
            binary_to_integer(Kb);
        {error, _} ->
            -1
    end.

fds(OsPid) ->
    case file:list_dir("/proc/" ++ integer_to_list(OsPid) ++ "/fd") of
        {ok, L} -> length(L);
        {error, _} -> -1
    end.

report(Total, Secs, Outcomes, B, A) ->
    io:format("~nsoak: ~b tasks in ~.1f s (~b tasks/s)~n",
              [Total, Secs, round(Total / max(Secs, 0.001))]),
    io:format("outcomes: ~p~n~n", [maps:filter(fun(_, V) -> V > 0 end, Outcomes)]),
    io:format("~-28s ~14s ~14s~n", ["", "before", "after"]),
    Row = fun(Label, K) ->
                  io:format("~-28s ~14w ~14w~n", [Label, maps:get(K, B), maps:get(K, A)])
          end,
    Row("BEAM RSS (KiB)", beam_rss_kb),
    Row("BEAM open fds", beam_fds),
    Row("erlang:memory(total) (KiB)", erlang_memory_kb),
    Row("Erlang processes", processes),
    Row("Erlang ports", ports),
    Row("ETS tables", ets_tables),
    Row("OS processes under the BEAM", os_processes),
    Row("live object handles", handles),
    Row("port restarts (total)", restarts),
    lists:foreach(
      fun({#{index := I} = LB, LA}) ->
              io:format("~-28s ~14w ~14w~n",
                        [io_lib:format("loop ~b port RSS (KiB)", [I]),
                         maps:get(rss_kb, LB), maps:get(rss_kb, LA)]),
              io:format("~-28s ~14w ~14w~n",
                        [io_lib:format("loop ~b port open fds", [I]),
                         maps:get(fds, LB), maps:get(fds, LA)])
      end, lists:zip(maps:get(loops, B), maps:get(loops, A))),
    lists:foreach(
      fun({{I, PB, MB}, {I, PA, MA}}) ->
              io:format("~-28s ~14w ~14w~n",
                        [io_lib:format("loop ~b pending table", [I]), PB, PA]),
              io:format("~-28s ~14w ~14w~n",
                        [io_lib:format("loop ~b monitored table", [I]), MB, MA])
      end, lists:zip(maps:get(tables, B), maps:get(tables, A))).

verdict(Outcomes, Before, After) ->
    Grown = fun(K, Slack) ->
                    [{grew, K, maps:get(K, Before), maps:get(K, After)}
                     || maps:get(K, After) > maps:get(K, Before) + Slack]
            end,
    Bad = [{malformed, V} || V <- [maps:get(malformed, Outcomes, 0)], V > 0]
        ++ [{undrained, I} || {I, P, M} <- maps:get(tables, After), P + M > 0]
        ++ Grown(processes, ?PROCESS_SLACK) ++ Grown(ports, 0) ++ Grown(ets_tables, 0)
        ++ [{os_processes, maps:get(os_process_names, Before),
             maps:get(os_process_names, After)} || Grown(os_processes, 0) =/= []]
        ++ Grown(beam_fds, 0)
        ++ [{handles_left, H} || H <- [maps:get(handles, After)], H > 0],
    case Bad of
        [] -> io:format("~nsoak: ok~n"), 0;
        _ -> io:format("~nsoak: FAILED ~p~n", [Bad]), 1
    end.

%% The OS processes descended from OsPid (the ports and whatever they
%% started), from /proc.
descendants(OsPid) ->
    {ok, Entries} = file:list_dir("/proc"),
    Parents = lists:foldl(
                fun(E, Acc) ->
                        case string:to_integer(E) of
                            {Pid, []} ->
                                case file:read_file("/proc/" ++ E ++ "/stat") of
                                    {ok, Stat} -> [{ppid(Stat), Pid, state(Stat)} | Acc];
                                    {error, _} -> Acc
                                end;
                            _ ->
                                Acc
                        end
                end, [], Entries),
    tree([OsPid], Parents, []).

comm(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/cmdline") of
        {ok, Cmd} -> binary:replace(string:trim(Cmd, trailing, [0]), <<0>>, <<" ">>, [global]);
        {error, _} -> <<"?">>
    end.

%% The third and fourth fields of /proc/PID/stat, after the parenthesised
%% name (which may itself hold spaces and parentheses).
ppid(Stat) ->
    [_, After] = string:split(Stat, <<")">>, trailing),
    [_State, PPid | _] = string:lexemes(After, " "),
    binary_to_integer(PPid).

state(Stat) ->
    [_, After] = string:split(Stat, <<")">>, trailing),
    [State | _] = string:lexemes(After, " "),
    State.

%% Running processes only: an exited child its parent has not reaped yet
%% (a zombie, state Z) holds nothing but its pid.
tree([], _Parents, Acc) ->
    Acc;
tree([P | Rest], Parents, Acc) ->
    Children = [C || {Parent, C, _} <- Parents, Parent =:= P],
    Live = [C || {Parent, C, State} <- Parents, Parent =:= P, State =/= <<"Z">>],
    tree(Children ++ Rest, Parents, Live ++ Acc).

env_int(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        V -> list_to_integer(V)
    end.

%% `make soak` runs from the repository's root.
root() ->
    {ok, Cwd} = file:get_cwd(),
    Cwd.
