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
%% cancel_grace_ms for the runaway-code cases.
-define(GRACE, 500).

-spec all() -> [atom()].
all() ->
    [%% Rust side: results, runaway code, memory.
     huge_int_result_is_task_error, runaway_sync_code_is_interrupted,
     runaway_sync_code_catching_the_deadline_kills_port,
     runaway_sync_code_in_c_kills_port, big_result_memory_is_released,
     memory_limit_is_data_not_address_space,
     encoder_allocation_failure_is_memory_error].

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
case_env(Case) when Case =:= runaway_sync_code_is_interrupted;
                    Case =:= runaway_sync_code_catching_the_deadline_kills_port;
                    Case =:= runaway_sync_code_in_c_kills_port ->
    [{cancel_grace_ms, ?GRACE}];
case_env(memory_limit_is_data_not_address_space) -> [{max_memory_mb, 600}];
case_env(encoder_allocation_failure_is_memory_error) -> [{max_memory_mb, 600}];
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

%% == Rust-side: results, runaway code, memory ==

-spec huge_int_result_is_task_error() -> [{doc, string()}].
huge_int_result_is_task_error() -> [{doc, "An integer result beyond the BEAM's largest (33554368 bits) is that task's OverflowError naming the limit, not an undecodable reply; the largest one arrives; the port and a bystander are untouched."}].
-spec huge_int_result_is_task_error(ct_suite:ct_config()) -> term().
huge_int_result_is_task_error(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(1.0),
    {error, {python, <<"OverflowError">>, Msg, _}} = run(huge_int, [67108864], ?PROMPTLY),
    ?assertNotEqual(nomatch, binary:match(Msg, <<"33554368-bit limit">>)),
    ?assertMatch({error, {python, <<"OverflowError">>, _, _}},
                 run(huge_int, [33554368], ?PROMPTLY)),
    ?assertEqual({ok, 1 bsl 33554367}, run(huge_int, [33554367], ?PROMPTLY)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec runaway_sync_code_is_interrupted() -> [{doc, string()}].
runaway_sync_code_is_interrupted() -> [{doc, "A plain function in `while True: pass` past its deadline is interrupted in Python: {error, timeout}, the same OS process after cancel_grace_ms, the bystander answered and the next task served."}].
-spec runaway_sync_code_is_interrupted(ct_suite:ct_config()) -> term().
runaway_sync_code_is_interrupted(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(1.0),
    ?assertEqual({error, timeout}, run(spin, [], 300)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    timer:sleep(2 * ?GRACE),
    ?assertEqual({ok, <<"done">>}, run(spin_for, [0.05], ?PROMPTLY)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0, pending := 0}, pyport_ct:loop_stats(1)).

-spec runaway_sync_code_catching_the_deadline_kills_port() -> [{doc, string()}].
runaway_sync_code_catching_the_deadline_kills_port() -> [{doc, "A plain function that catches the watchdog's TaskDeadline and spins on is still stopped: the port is killed after cancel_grace_ms, the bystander gets {python_exit, _}, and a fresh port serves."}].
-spec runaway_sync_code_catching_the_deadline_kills_port(ct_suite:ct_config()) -> term().
runaway_sync_code_catching_the_deadline_kills_port(_) ->
    stuck_port_is_killed(fun() -> run(spin_catching, [], 300) end).

-spec runaway_sync_code_in_c_kills_port() -> [{doc, string()}].
runaway_sync_code_in_c_kills_port() -> [{doc, "A plain function blocked in C (libc sleep through ctypes) cannot be interrupted in Python: the port is killed after cancel_grace_ms, the bystander gets {python_exit, _}, and a fresh port serves."}].
-spec runaway_sync_code_in_c_kills_port(ct_suite:ct_config()) -> term().
runaway_sync_code_in_c_kills_port(_) ->
    stuck_port_is_killed(
      fun() ->
              py_event_loop:run({pyport_loop, 1}, pyport_faults, ctypes_sleep, [600],
                                #{timeout => 300})
      end).

-spec big_result_memory_is_released() -> [{doc, string()}].
big_result_memory_is_released() -> [{doc, "After a 300 MB result the port gives the memory back: its RSS is under 120 MB again within a few seconds."}].
-spec big_result_memory_is_released(ct_suite:ct_config()) -> term().
big_result_memory_is_released(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(1.0),
    {ok, Big} = run(big_bytes, [300], 60000),
    ?assertEqual(300 bsl 20, byte_size(Big)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ok = pyport_ct:wait_until(
           fun() ->
                   {ok, Rss} = run(rss_mb, [], ?PROMPTLY),
                   Rss < 120
           end, 5000),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

-spec memory_limit_is_data_not_address_space() -> [{doc, string()}].
memory_limit_is_data_not_address_space() -> [{doc, "max_memory_mb limits data, not address space: with 600 MB a 400 MB object can be made."}].
-spec memory_limit_is_data_not_address_space(ct_suite:ct_config()) -> term().
memory_limit_is_data_not_address_space(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({ok, 400 bsl 20}, run(big_bytes_len, [400], 60000)),
    ?assertMatch({error, {python, <<"MemoryError">>, _, _}}, run(big_bytes_len, [700], 60000)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec encoder_allocation_failure_is_memory_error() -> [{doc, string()}].
encoder_allocation_failure_is_memory_error() -> [{doc, "A result that fits the data limit but whose encoding does not is that task's MemoryError, not an abort: the same OS process serves on and the bystander is answered."}].
-spec encoder_allocation_failure_is_memory_error(ct_suite:ct_config()) -> term().
encoder_allocation_failure_is_memory_error(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    %% 350 MB fit under 600 MB; its encoding, 350 MB more, does not.
    By = bystander(1.0),
    ?assertMatch({error, {python, <<"MemoryError">>, _, _}}, run(big_bytes, [350], 60000)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ?assertEqual({ok, 4.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [16.0], #{})),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

%% Runs Stuck (a call that leaves loop 1 stuck past its deadline and
%% returns what its caller saw) with a bystander on the loop; checks that
%% the port is killed after cancel_grace_ms and a fresh one serves.
-spec stuck_port_is_killed(fun(() -> term())) -> ok.
stuck_port_is_killed(Stuck) ->
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    By = bystander(60),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end, 5000),
    ?assertEqual({error, timeout}, Stuck()),
    ?assertMatch({error, {python_exit, _}}, py_event_loop:await(By, 30000)),
    _ = pyport_ct:await_restart(1, Old),
    ?assertEqual({ok, 4.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [16.0], #{})),
    ok.
