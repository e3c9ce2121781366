%% The port is untrusted (docs/robustness.md, "The port is untrusted"):
%% task code that forges packets, floods the node with atoms, raises what
%% is not an Exception, exits, forks, spins or hoards memory. For each:
%% the node stays up, every caller is answered within its timeout, and
%% only the misbehaving task pays unless the OS process is really gone.
%% Fixtures: ct/python/pyport_hostile.py.
-module(py_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(X, pyport_hostile).
-define(NUM_LOOPS, 2).
%% Liveness bound only, never a speed assertion.
-define(PROMPTLY, 10000).

-spec all() -> [atom()].
all() ->
    [mass_caller_death_is_cleaned_up, out_of_range_timeouts_never_leak,
     stopped_port_does_not_hold_callers, calls_during_restart_wait_for_fresh_port,
     calls_during_restart_overloaded_beyond_bound,
     ignored_cancel_on_serving_port_costs_the_task].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(Case, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS} | case_env(Case)]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    ok = pyport_ct:release_logs(),
    pyport_ct:stop().

%% Per-case application environment.
-spec case_env(atom()) -> [{atom(), term()}].
%% A short grace: a port busy answering 10,000 cancels is still judged
%% by its progress, not by how long each cancel takes.
case_env(mass_caller_death_is_cleaned_up) -> [{max_pending, 20000}, {cancel_grace_ms, 500}];
%% The callers' cancels must not get the stopped port killed meanwhile.
case_env(stopped_port_does_not_hold_callers) -> [{cancel_grace_ms, 30000}];
case_env(calls_during_restart_overloaded_beyond_bound) -> [{max_pending, 10}];
case_env(ignored_cancel_on_serving_port_costs_the_task) -> [{cancel_grace_ms, 200}];
case_env(_) -> [].

%% Helpers.

%% Starts a bystander on loop 1: a task that naps Seconds and answers ok.
-spec bystander(number()) -> reference().
bystander(Seconds) ->
    py_event_loop:create_task({pyport_loop, 1}, ?X, nap, [Seconds, ok], #{}).

%% The bystander's answer: ok when the loop survived.
-spec bystander_result(reference()) -> term().
bystander_result(Ref) ->
    py_event_loop:await(Ref, ?PROMPTLY).

%% Runs a fixture on loop 1 with a timeout.
-spec run(atom(), list(), timeout()) -> term().
run(F, A, Timeout) ->
    py_event_loop:run({pyport_loop, 1}, ?X, F, A, #{timeout => Timeout}).


%% == load and lifetimes (items 9-12) ==

-spec mass_caller_death_is_cleaned_up() -> [{doc, string()}].
mass_caller_death_is_cleaned_up() -> [{doc, "10,000 callers, each with a 30 s task, killed at once: their tasks are cancelled and pending drains, the port busy answering the cancels is not killed, and a bystander on the loop gets its result."}].
-spec mass_caller_death_is_cleaned_up(ct_suite:ct_config()) -> term().
mass_caller_death_is_cleaned_up(_) ->
    N = 10000,
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Self = self(),
    Callers = [spawn(fun() ->
                             Ref = py_event_loop:create_task({pyport_loop, 1}, ?X, nap,
                                                             [30, never], #{}),
                             Self ! {submitted, self()},
                             receive never -> Ref end
                     end) || _ <- lists:seq(1, N)],
    [receive {submitted, P} -> ok after 60000 -> error({not_submitted, P}) end
     || P <- Callers],
    ?assertMatch(#{pending := N}, pyport_ct:loop_stats(1)),
    Bystander = bystander(2.0),
    T0 = erlang:monotonic_time(millisecond),
    [exit(P, kill) || P <- Callers],
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =< 1 end, 20000),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ct:comment("~b dead callers' tasks cleaned up in ~b ms", [N, Ms]),
    ct:pal("~b dead callers' tasks cleaned up in ~b ms", [N, Ms]),
    bystander_ok(bystander_result(Bystander)),
    ?assertMatch(#{os_pid := OsPid, pending := 0}, pyport_ct:loop_stats(1)),
    ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)).

-spec out_of_range_timeouts_never_leak() -> [{doc, string()}].
out_of_range_timeouts_never_leak() -> [{doc, "Timeouts beyond what `receive ... after` takes (2^32 ms, 1 bsl 1100) work for run, await, exec and eval, on a loop and through the pool, and leave nothing pending."}].
-spec out_of_range_timeouts_never_leak(ct_suite:ct_config()) -> term().
out_of_range_timeouts_never_leak(_) ->
    Bystander = bystander(1.0),
    L = {pyport_loop, 1},
    lists:foreach(
      fun(T) ->
              ?assertEqual({ok, 1}, py_event_loop:run(L, ?X, nap, [0.01, 1], #{timeout => T})),
              ?assertEqual({ok, 1}, py_event_loop:await(
                                       py_event_loop:create_task(L, ?X, nap, [0.01, 1], #{}), T)),
              ?assertEqual(ok, py_event_loop:exec(L, <<"x = 1">>, #{timeout => T})),
              ?assertEqual({ok, 2}, py_event_loop:eval(L, <<"1 + 1">>, #{timeout => T})),
              ?assertEqual({ok, 1}, py_event_loop_pool:run(?X, nap, [0.01, 1], #{timeout => T})),
              ?assertEqual({ok, 1}, py_event_loop_pool:await(
                                       py_event_loop_pool:create_task(?X, nap, [0.01, 1]), T)),
              ?assertEqual({ok, 2}, py_event_loop_pool:eval(<<"1 + 1">>, #{timeout => T})),
              %% A caller waiting that long that dies: its task is cancelled.
              {Pid, MRef} = spawn_monitor(fun() -> py_event_loop:run(L, ?X, nap, [60, never],
                                                                      #{timeout => T}) end),
              ok = pyport_ct:wait_until(
                     fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 2 end, ?PROMPTLY),
              exit(Pid, kill),
              receive {'DOWN', MRef, process, Pid, killed} -> ok end,
              ok = pyport_ct:wait_until(
                     fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =< 1 end, ?PROMPTLY)
      end, [4294967295, 4294967296, 1 bsl 32 + 1, 1 bsl 1100]),
    bystander_ok(bystander_result(Bystander)),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, py_event_loop_pool:get_stats()) =:= 0 end, ?PROMPTLY).

-spec stopped_port_does_not_hold_callers() -> [{doc, string()}].
stopped_port_does_not_hold_callers() -> [{doc, "Callers with 1 MB arguments and 500 ms timeouts on a port that is SIGSTOPped (its input pipe full) all return {error, timeout} within ~1.5 s; after SIGCONT the same port serves and the bystander gets its result."}].
-spec stopped_port_does_not_hold_callers(ct_suite:ct_config()) -> term().
stopped_port_does_not_hold_callers(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Bystander = bystander(1.0),
    Big = binary:copy(<<"x">>, 1 bsl 20),
    Self = self(),
    signal(OsPid, "STOP"),
    try
        T0 = erlang:monotonic_time(millisecond),
        Callers = [spawn_link(fun() ->
                                      R = run(nap_sized, [0.01, Big], 500),
                                      Self ! {self(), R, erlang:monotonic_time(millisecond) - T0}
                              end) || _ <- lists:seq(1, 5)],
        Results = [receive {P, R, Ms} -> {R, Ms} after 5000 -> {P, no_answer} end
                   || P <- Callers],
        ct:pal("results on the stopped port: ~p", [Results]),
        [?assertMatch({{error, timeout}, Ms} when Ms < 1500, R) || R <- Results]
    after
        signal(OsPid, "CONT")
    end,
    bystander_ok(bystander_result(Bystander)),
    ?assertEqual({ok, 1 bsl 20}, run(nap_sized, [0.01, Big], ?PROMPTLY)),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end, ?PROMPTLY),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

-spec calls_during_restart_wait_for_fresh_port() -> [{doc, string()}].
calls_during_restart_wait_for_fresh_port() -> [{doc, "50 calls fired at a loop whose port was just killed wait for the fresh port within their timeout and all get {ok, _}, not loop_unavailable."}].
-spec calls_during_restart_wait_for_fresh_port(ct_suite:ct_config()) -> term().
calls_during_restart_wait_for_fresh_port(_) ->
    Bystander = bystander(5.0),
    Results = restart_burst(50, 5000),
    ?assertEqual([{ok, I} || I <- lists:seq(1, 50)], Results),
    %% The port is really gone: the bystander says so, it does not hang.
    ?assertMatch({error, {python_exit, _}}, bystander_result(Bystander)).

-spec calls_during_restart_overloaded_beyond_bound() -> [{doc, string()}].
calls_during_restart_overloaded_beyond_bound() -> [{doc, "With max_pending 10, of 40 calls fired at a restarting loop at most 10 wait for the fresh port and get {ok, _}; the rest get {error, overloaded} at once, none loop_unavailable."}].
-spec calls_during_restart_overloaded_beyond_bound(ct_suite:ct_config()) -> term().
calls_during_restart_overloaded_beyond_bound(_) ->
    Bystander = bystander(5.0),
    Results = restart_burst(40, 5000),
    Ok = [R || {ok, _} = R <- Results],
    Overloaded = [R || {error, overloaded} = R <- Results],
    ct:pal("~b ok, ~b overloaded", [length(Ok), length(Overloaded)]),
    ?assertEqual(40, length(Ok) + length(Overloaded)),
    ?assert(length(Ok) >= 1),
    ?assert(length(Ok) =< 10),
    ?assert(length(Overloaded) >= 30),
    ?assertMatch({error, {python_exit, _}}, bystander_result(Bystander)).

-spec ignored_cancel_on_serving_port_costs_the_task() -> [{doc, string()}].
ignored_cancel_on_serving_port_costs_the_task() -> [{doc, "A task that ignores its cancel on a port that keeps serving other tasks is not a stuck port: the port is not killed, the bystander gets its result, and the task's entry is forgotten after 10 grace periods, so pending drains."}].
-spec ignored_cancel_on_serving_port_costs_the_task(ct_suite:ct_config()) -> term().
ignored_cancel_on_serving_port_costs_the_task(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Bystander = bystander(3.0),
    ?assertEqual({error, timeout}, run(ignore_cancel_for, [60], 100)),
    %% Other work keeps the port sending for well over 10 grace periods.
    Deadline = erlang:monotonic_time(millisecond) + 4000,
    Chatter = fun Loop() ->
                      case erlang:monotonic_time(millisecond) < Deadline of
                          true -> {ok, 1} = run(nap, [0.05, 1], ?PROMPTLY), Loop();
                          false -> ok
                      end
              end,
    ok = Chatter(),
    bystander_ok(bystander_result(Bystander)),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end, ?PROMPTLY),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

%% Kills loop 1's port, waits until its worker is gone, and fires N calls
%% with Timeout at the loop at once; their results in order.
-spec restart_burst(pos_integer(), timeout()) -> [term()].
restart_burst(N, Timeout) ->
    #{os_pid := OsPid, worker := Worker} = pyport_ct:loop_stats(1),
    MRef = erlang:monitor(process, Worker),
    signal(OsPid, "KILL"),
    receive {'DOWN', MRef, process, Worker, _} -> ok end,
    Self = self(),
    Callers = [spawn_link(fun() -> Self ! {self(), run(nap, [0.01, I], Timeout)} end)
               || I <- lists:seq(1, N)],
    [receive {P, R} -> R after Timeout + ?PROMPTLY -> {P, no_answer} end || P <- Callers].

-spec signal(integer(), string()) -> ok.
signal(OsPid, Sig) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ integer_to_list(OsPid)),
    ok.

%% The bystander's nap answers the atom ok, which may come back as the
%% string "ok".
-spec bystander_ok(term()) -> ok.
bystander_ok({ok, ok}) -> ok;
bystander_ok({ok, <<"ok">>}) -> ok;
bystander_ok(Other) -> error({bystander, Other}).
