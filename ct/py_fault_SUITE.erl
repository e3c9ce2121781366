%% Faults: dying callers, crashing and killed ports, a killed worker,
%% garbage on the wire, bad configuration, and shutdown leaving no OS
%% process behind. Each case gets a freshly started application.
-module(py_fault_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(H, pyport_ct_helpers).
-define(NUM_LOOPS, 2).
%% Liveness bound only: well below the tasks' own 60 s timeout, so a
%% caller that gets its answer within it was answered by the crash.
-define(PROMPTLY, 10000).
%% cancel_grace_ms for the stuck-port cases.
-define(GRACE, 500).
-define(F, pyport_faults).

-spec all() -> [atom()].
all() ->
    [caller_death_cancels_its_tasks, caller_death_spares_other_callers,
     port_sigkill_fails_inflight_callers, port_exit_status_reported,
     crash_fails_created_tasks, restarts_counted, other_loops_unaffected,
     worker_killed, garbage_packet, unknown_message, python_logging_reaches_logger,
     stdout_does_not_corrupt_channel, stop_leaves_no_os_process,
     stop_while_python_blocked, bad_config_fails_start, port_start_failure,
     failing_restarts_give_up, memory_limit, oversized_packet_refused,
     %% Faults from the misbehaving fixtures (ct/python/pyport_faults.py).
     segfault_reported, abort_reported,
     ignored_cancel_kills_port, busy_loop_is_interrupted,
     busy_coroutine_kills_port, blocking_sleep_kills_port,
     ctypes_sleep_kills_port, await_timeout_on_stuck_task_kills_port,
     caller_death_on_ignored_cancel_kills_port,
     cancel_honoured_within_grace_keeps_port, stuck_port_recovers_repeatedly,
     stdout_spam_keeps_serving, unbounded_allocation_under_memory_limit,
     unknown_message_reply_shape, valid_term_as_task_fields_is_task_error,
     dead_loop_is_unavailable_not_overloaded, stuck_port_closed_when_kill_fails,
     port_refusing_input_is_stuck, unread_answers_are_bounded].

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

-spec case_env(atom()) -> [{atom(), term()}].
case_env(memory_limit) -> [{max_memory_mb, 1024}];
case_env(dead_loop_is_unavailable_not_overloaded) -> [{max_pending, 100}];
case_env(unbounded_allocation_under_memory_limit) -> [{max_memory_mb, 1024}];
case_env(cancel_honoured_within_grace_keeps_port) -> [{cancel_grace_ms, 10000}];
case_env(Case) when Case =:= ignored_cancel_kills_port;
                    Case =:= busy_loop_is_interrupted;
                    Case =:= busy_coroutine_kills_port;
                    Case =:= blocking_sleep_kills_port;
                    Case =:= ctypes_sleep_kills_port;
                    Case =:= await_timeout_on_stuck_task_kills_port;
                    Case =:= caller_death_on_ignored_cancel_kills_port;
                    Case =:= stuck_port_recovers_repeatedly;
                    Case =:= stuck_port_closed_when_kill_fails ->
    [{cancel_grace_ms, ?GRACE}];
case_env(oversized_packet_refused) -> [{max_packet, 4096}];
case_env(port_refusing_input_is_stuck) -> [{cancel_grace_ms, ?GRACE}];
case_env(_) -> [].

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    ok = pyport_ct:release_logs(),
    pyport_ct:stop().

-spec caller_death_cancels_its_tasks() -> [{doc, string()}].
caller_death_cancels_its_tasks() -> [{doc, "When a caller dies, its pending tasks are cancelled in Python."}].
-spec caller_death_cancels_its_tasks(ct_suite:ct_config()) -> term().
caller_death_cancels_its_tasks(_) ->
    Keys = [key() || _ <- lists:seq(1, 3)],
    Self = self(),
    Caller = spawn(fun() ->
                           Refs = [py_event_loop:create_task(?H, watched_sleep, [K, 30])
                                   || K <- Keys],
                           Self ! {submitted, self()},
                           receive never -> Refs end
                   end),
    receive {submitted, Caller} -> ok end,
    [ok = pyport_ct:wait_until(fun() -> call(was_started, [K]) end, 5000) || K <- Keys],
    ?assertMatch(#{pending := 3}, py_event_loop_pool:get_stats()),
    exit(Caller, kill),
    [ok = pyport_ct:wait_until(fun() -> call(was_cancelled, [K]) end, 5000) || K <- Keys],
    ?assertMatch(#{pending := 0}, py_event_loop_pool:get_stats()).

-spec caller_death_spares_other_callers() -> [{doc, string()}].
caller_death_spares_other_callers() -> [{doc, "A dying caller's cancellation touches only its own tasks."}].
-spec caller_death_spares_other_callers(ct_suite:ct_config()) -> term().
caller_death_spares_other_callers(_) ->
    Doomed = key(),
    Mine = key(),
    Self = self(),
    Caller = spawn(fun() ->
                           Ref = py_event_loop:create_task(?H, watched_sleep, [Doomed, 30]),
                           Self ! {submitted, self()},
                           receive never -> Ref end
                   end),
    receive {submitted, Caller} -> ok end,
    MyRef = py_event_loop:create_task(?H, watched_sleep, [Mine, 0.5]),
    ok = pyport_ct:wait_until(fun() -> call(was_started, [Doomed]) end, 5000),
    exit(Caller, kill),
    ok = pyport_ct:wait_until(fun() -> call(was_cancelled, [Doomed]) end, 5000),
    ?assertEqual({ok, Mine}, py_event_loop:await(MyRef)),
    ?assertEqual(false, call(was_cancelled, [Mine])).

-spec port_sigkill_fails_inflight_callers() -> [{doc, string()}].
port_sigkill_fails_inflight_callers() -> [{doc, "SIGKILL of the Python process answers every in-flight caller with {error, {python_exit, 137}} at once; the next task runs on a fresh port."}].
-spec port_sigkill_fails_inflight_callers(ct_suite:ct_config()) -> term().
port_sigkill_fails_inflight_callers(_) ->
    #{os_pid := OldOsPid} = pyport_ct:loop_stats(1),
    Keys = [key() || _ <- lists:seq(1, 5)],
    Self = self(),
    Callers = [spawn_link(fun() ->
                                  Self ! {self(), py_event_loop:run(?H, watched_sleep, [K, 60],
                                                                    #{timeout => 60000})}
                          end) || K <- Keys],
    [ok = pyport_ct:wait_until(fun() -> call(was_started, [K]) end, 5000) || K <- Keys],
    ?assertEqual({error, {python_exit, 137}}, py_event_loop:run(?H, kill_process, [])),
    [receive
         {C, Result} -> ?assertEqual({error, {python_exit, 137}}, Result)
     after ?PROMPTLY ->
         ct:fail({no_answer, C})
     end || C <- Callers],
    NewOsPid = pyport_ct:await_restart(1, OldOsPid),
    ?assertEqual({ok, NewOsPid}, py_event_loop:run(?H, getpid, [])),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ok = pyport_ct:wait_until(fun() -> not pyport_ct:os_pid_alive(OldOsPid) end, 5000),
    ?assertEqual([], pyport_ct:mailbox()).

-spec port_exit_status_reported() -> [{doc, string()}].
port_exit_status_reported() -> [{doc, "os._exit(3) in a task is reported as {error, {python_exit, 3}}."}].
-spec port_exit_status_reported(ct_suite:ct_config()) -> term().
port_exit_status_reported(_) ->
    #{os_pid := OldOsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({error, {python_exit, 3}}, py_event_loop:run(?H, exit_process, [3])),
    _ = pyport_ct:await_restart(1, OldOsPid),
    ?assertEqual({ok, 2.0}, py_event_loop:run(math, sqrt, [4.0])).

-spec crash_fails_created_tasks() -> [{doc, string()}].
crash_fails_created_tasks() -> [{doc, "Tasks made with create_task and not yet awaited get {error, {python_exit, _}} from await after a crash, and the mailbox is left clean."}].
-spec crash_fails_created_tasks(ct_suite:ct_config()) -> term().
crash_fails_created_tasks(_) ->
    #{os_pid := OldOsPid} = pyport_ct:loop_stats(1),
    Refs = [py_event_loop:create_task(?H, sleep_then, [60, I]) || I <- lists:seq(1, 20)],
    ok = py_event_loop:spawn_task(?H, kill_process_after, [0.05]),
    [?assertEqual({error, {python_exit, 137}}, py_event_loop:await(R, ?PROMPTLY))
     || R <- Refs],
    _ = pyport_ct:await_restart(1, OldOsPid),
    ?assertEqual([], pyport_ct:mailbox()).

-spec restarts_counted() -> [{doc, string()}].
restarts_counted() -> [{doc, "get_stats/0 counts each port restart, in total and per loop."}].
-spec restarts_counted(ct_suite:ct_config()) -> term().
restarts_counted(_) ->
    ?assertMatch(#{restarts := 0}, py_event_loop_pool:get_stats()),
    lists:foreach(
      fun(N) ->
              #{os_pid := Old} = pyport_ct:loop_stats(1),
              {error, {python_exit, _}} = py_event_loop:run(?H, exit_process, [1]),
              _ = pyport_ct:await_restart(1, Old),
              ?assertMatch(#{restarts := N}, py_event_loop_pool:get_stats()),
              ?assertMatch(#{restarts := N}, pyport_ct:loop_stats(1)),
              ?assertMatch(#{restarts := 0}, pyport_ct:loop_stats(2))
      end, [1, 2, 3]).

-spec other_loops_unaffected() -> [{doc, string()}].
other_loops_unaffected() -> [{doc, "A crash on one loop leaves the other loops' ports and tasks alone."}].
-spec other_loops_unaffected(ct_suite:ct_config()) -> term().
other_loops_unaffected(_) ->
    #{os_pid := Os1} = pyport_ct:loop_stats(1),
    #{os_pid := Os2} = pyport_ct:loop_stats(2),
    Ref = py_event_loop:create_task({pyport_loop, 2}, ?H, sleep_then, [0.5, survived], #{}),
    {error, {python_exit, _}} = py_event_loop:run(?H, exit_process, [7]),
    ?assertEqual({ok, <<"survived">>}, py_event_loop:await(Ref)),
    _ = pyport_ct:await_restart(1, Os1),
    ?assertMatch(#{os_pid := Os2, restarts := 0}, pyport_ct:loop_stats(2)).

-spec worker_killed() -> [{doc, string()}].
worker_killed() -> [{doc, "Killing the worker process fails its callers with {error, {worker_down, killed}}, ends its OS process, and a new worker takes over."}].
-spec worker_killed(ct_suite:ct_config()) -> term().
worker_killed(_) ->
    #{os_pid := OldOsPid, worker := Worker} = pyport_ct:loop_stats(1),
    Ref = py_event_loop:create_task(?H, sleep_then, [60, never]),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 1 end, 5000),
    exit(Worker, kill),
    ?assertEqual({error, {worker_down, killed}}, py_event_loop:await(Ref, ?PROMPTLY)),
    ok = pyport_ct:wait_until(fun() -> not pyport_ct:os_pid_alive(OldOsPid) end, 5000),
    _ = pyport_ct:await_restart(1, OldOsPid),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec garbage_packet() -> [{doc, string()}].
garbage_packet() -> [{doc, "Bytes that are not ETF, written straight to the port, are answered with bad_packet (logged as a warning) and the port keeps serving."}].
-spec garbage_packet(ct_suite:ct_config()) -> term().
garbage_packet(_) ->
    ok = pyport_ct:capture_logs(),
    #{port := Port, os_pid := OsPid} = pyport_ct:loop_stats(1),
    %% Framed by hand: the worker's port is in stream mode.
    true = erlang:port_command(Port, frame(<<"this is not ETF">>)),
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"bad_packet">>) end,
                                5000),
    ?assertMatch(#{level := warning, meta := #{pyport_loop := 1}}, Event),
    true = erlang:port_command(Port, frame(<<131, 104, 200>>)),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"bad_packet">>) end, 5000),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec unknown_message() -> [{doc, string()}].
unknown_message() -> [{doc, "A well-formed term that is no message is answered with unknown_message (logged) and the port keeps serving."}].
-spec unknown_message(ct_suite:ct_config()) -> term().
unknown_message(_) ->
    ok = pyport_ct:capture_logs(),
    #{port := Port, os_pid := OsPid} = pyport_ct:loop_stats(1),
    true = erlang:port_command(Port, frame(term_to_binary({hello, <<"world">>}))),
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"unknown_message">>) end, 5000),
    ?assertMatch(#{level := warning, meta := #{pyport_loop := 1}}, Event),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

-spec python_logging_reaches_logger() -> [{doc, string()}].
python_logging_reaches_logger() -> [{doc, "A Python logging record reaches the OTP logger at its level, tagged with the loop and the Python logger's name."}].
-spec python_logging_reaches_logger(ct_suite:ct_config()) -> term().
python_logging_reaches_logger(_) ->
    ok = pyport_ct:capture_logs(),
    Text = key(),
    {ok, true} = py_event_loop:run(?H, log_warning, [<<"pyport.ct">>, Text]),
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, Text) end, 5000),
    ?assertMatch(#{level := warning,
                   meta := #{pyport_loop := 1, python_logger := <<"pyport.ct">>}},
                 Event).

-spec stdout_does_not_corrupt_channel() -> [{doc, string()}].
stdout_does_not_corrupt_channel() -> [{doc, "What Python writes to fds 1 and 2 never reaches the packet channel."}].
-spec stdout_does_not_corrupt_channel(ct_suite:ct_config()) -> term().
stdout_does_not_corrupt_channel(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({ok, 5000}, py_event_loop:run(?H, print_lots, [5000])),
    ?assertEqual({ok, <<"still fine">>}, py_event_loop:run(?H, identity, [<<"still fine">>])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec stop_leaves_no_os_process() -> [{doc, string()}].
stop_leaves_no_os_process() -> [{doc, "Stopping the application ends every port's OS process, and a caller waiting on one is answered."}].
-spec stop_leaves_no_os_process(ct_suite:ct_config()) -> term().
stop_leaves_no_os_process(_) ->
    OsPids = [P || #{os_pid := P} <- maps:get(loops, py_event_loop_pool:get_stats())],
    ?assertEqual(?NUM_LOOPS, length(OsPids)),
    Ref = py_event_loop:create_task(?H, sleep_then, [60, never]),
    ok = application:stop(pyport),
    ?assertMatch({error, _}, py_event_loop:await(Ref, ?PROMPTLY)),
    [ok = pyport_ct:wait_until(fun() -> not pyport_ct:os_pid_alive(P) end, 5000)
     || P <- OsPids],
    ?assertEqual({error, loop_unavailable}, py_event_loop:run(math, sqrt, [1.0])).

-spec stop_while_python_blocked() -> [{doc, string()}].
stop_while_python_blocked() -> [{doc, "Stopping while Python is stuck in a C call still ends the OS process (closing the port is enough)."}].
-spec stop_while_python_blocked(ct_suite:ct_config()) -> term().
stop_while_python_blocked(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ok = py_event_loop:spawn_task(?H, block, [60]),
    ok = application:stop(pyport),
    ok = pyport_ct:wait_until(fun() -> not pyport_ct:os_pid_alive(OsPid) end, 10000).

-spec bad_config_fails_start() -> [{doc, string()}].
bad_config_fails_start() -> [{doc, "A bad configuration value stops the application from starting, with the key and value in the reason."}].
-spec bad_config_fails_start(ct_suite:ct_config()) -> term().
bad_config_fails_start(_) ->
    ok = application:stop(pyport),
    ok = application:set_env(pyport, max_packet, 0),
    {error, Reason} = application:start(pyport),
    ?assertMatch({_, _}, binary:match(iolist_to_binary(io_lib:format("~p", [Reason])),
                                      <<"{bad_config,{max_packet,0}}">>)),
    ok = application:unset_env(pyport, max_packet),
    ok = application:set_env(pyport, event_loop_pool_size, 0),
    {error, Reason2} = application:start(pyport),
    ?assertMatch({_, _}, binary:match(iolist_to_binary(io_lib:format("~p", [Reason2])),
                                      <<"{bad_config,{event_loop_pool_size,0}}">>)).

-spec port_start_failure() -> [{doc, string()}].
port_start_failure() -> [{doc, "A port that does not become ready stops the application from starting, with port_start_failed in the reason."}].
-spec port_start_failure(ct_suite:ct_config()) -> term().
port_start_failure(_) ->
    ok = application:stop(pyport),
    %% Python cannot start within 1 ms.
    ok = application:set_env(pyport, start_timeout, 1),
    {error, Reason} = application:start(pyport),
    ?assertMatch({_, _}, binary:match(iolist_to_binary(io_lib:format("~p", [Reason])),
                                      <<"{port_start_failed,no_ready_packet_in_time}">>)).

-spec failing_restarts_give_up() -> [{doc, string()}].
failing_restarts_give_up() -> [{doc, "When a crashed port cannot be restarted, the supervisors give up after a bounded number of attempts and the application stops, rather than spinning."}].
-spec failing_restarts_give_up(ct_suite:ct_config()) -> term().
failing_restarts_give_up(_) ->
    ok = application:set_env(pyport, start_timeout, 1),
    {error, {python_exit, _}} = py_event_loop:run(?H, exit_process, [1]),
    ok = pyport_ct:wait_until(
           fun() -> not lists:keymember(pyport, 1, application:which_applications()) end,
           30000),
    ?assertEqual(undefined, whereis(pyport_sup)).

-spec memory_limit() -> [{doc, string()}].
memory_limit() -> [{doc, "With max_memory_mb set, an allocation beyond it is a MemoryError for that task, not a dead port."}].
-spec memory_limit(ct_suite:ct_config()) -> term().
memory_limit(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertMatch({error, {python, <<"MemoryError">>, _, _}},
                 py_event_loop:run(builtins, bytearray, [2000000000])),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec oversized_packet_refused() -> [{doc, string()}].
oversized_packet_refused() -> [{doc, "A task packet larger than max_packet is refused at the call site with {error, {packet_too_large, Size, Max}}; results are not limited by it (max_output_packet bounds them)."}].
-spec oversized_packet_refused(ct_suite:ct_config()) -> term().
oversized_packet_refused(_) ->
    Big = binary:copy(<<"x">>, 5000),
    {error, {packet_too_large, Size, 4096}} = py_event_loop:run(?H, identity, [Big]),
    ?assert(Size > 5000),
    ?assertMatch({error, {packet_too_large, _, 4096}},
                 py_event_loop:await(py_event_loop:create_task(?H, identity, [Big]))),
    ?assertMatch({error, {packet_too_large, _, 4096}},
                 py_event_loop:spawn_task(?H, identity, [Big])),
    ?assertMatch(#{pending := 0}, py_event_loop_pool:get_stats()),
    {ok, Result} = py_event_loop:run(builtins, bytes, [100000]),
    ?assertEqual(100000, byte_size(Result)),
    ?assertEqual([], pyport_ct:mailbox()).

-spec segfault_reported() -> [{doc, string()}].
segfault_reported() -> [{doc, "A segfault in Python (ctypes.string_at(0)) fails the task with {error, {python_exit, 139}}, the port restarts, and the node is untouched."}].
-spec segfault_reported(ct_suite:ct_config()) -> term().
segfault_reported(_) ->
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    ?assertEqual({error, {python_exit, 128 + 11}}, py_event_loop:run(?F, segfault, [])),
    _ = pyport_ct:await_restart(1, Old),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec abort_reported() -> [{doc, string()}].
abort_reported() -> [{doc, "os.abort() fails the task with {error, {python_exit, 134}} (SIGABRT) and the port restarts."}].
-spec abort_reported(ct_suite:ct_config()) -> term().
abort_reported(_) ->
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    ?assertEqual({error, {python_exit, 128 + 6}}, py_event_loop:run(?F, abort, [])),
    _ = pyport_ct:await_restart(1, Old),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec ignored_cancel_kills_port() -> [{doc, string()}].
ignored_cancel_kills_port() -> [{doc, "A task that swallows its cancellation past its deadline plus cancel_grace_ms gets the port killed: its caller has {error, timeout}, the other callers on that loop {error, {python_exit, {killed, unresponsive}}}, and a fresh port serves."}].
-spec ignored_cancel_kills_port(ct_suite:ct_config()) -> term().
ignored_cancel_kills_port(_) ->
    Key = key(),
    pyport_ct:stuck_kills_port(fun() -> py_event_loop:run(?F, ignore_cancel, [Key], #{timeout => 300}) end).

-spec busy_loop_is_interrupted() -> [{doc, string()}].
busy_loop_is_interrupted() -> [{doc, "Python spinning in a plain function past its deadline is interrupted by the port's watchdog: {error, timeout} for that task, the same port (no kill after cancel_grace_ms), and a waiting caller on the loop is answered."}].
-spec busy_loop_is_interrupted(ct_suite:ct_config()) -> term().
busy_loop_is_interrupted(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Self = self(),
    Waiting = spawn_link(fun() ->
                                 Self ! {self(), py_event_loop:run(?H, sleep_then, [1, 42],
                                                                   #{timeout => 60000})}
                         end),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end, 5000),
    ?assertEqual({error, timeout}, py_event_loop:run(?F, busy_loop, [], #{timeout => 300})),
    receive
        {Waiting, Result} -> ?assertEqual({ok, 42}, Result)
    after ?PROMPTLY ->
        ct:fail(waiting_caller_not_answered)
    end,
    %% Past cancel_grace_ms: the port was not killed.
    timer:sleep(2 * ?GRACE),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0, pending := 0}, pyport_ct:loop_stats(1)),
    ?assertEqual([], pyport_ct:mailbox()).

-spec busy_coroutine_kills_port() -> [{doc, string()}].
busy_coroutine_kills_port() -> [{doc, "A coroutine that spins without awaiting (the loop can never cancel it) gets the port killed after its deadline plus cancel_grace_ms."}].
-spec busy_coroutine_kills_port(ct_suite:ct_config()) -> term().
busy_coroutine_kills_port(_) ->
    pyport_ct:stuck_kills_port(fun() -> py_event_loop:run(?F, busy_loop_async, [], #{timeout => 300}) end).

-spec blocking_sleep_kills_port() -> [{doc, string()}].
blocking_sleep_kills_port() -> [{doc, "A blocking C call in a sync function (time.sleep(600)) past the deadline plus cancel_grace_ms gets the port killed and restarted."}].
-spec blocking_sleep_kills_port(ct_suite:ct_config()) -> term().
blocking_sleep_kills_port(_) ->
    pyport_ct:stuck_kills_port(fun() -> py_event_loop:run(?F, blocking_sleep, [600], #{timeout => 300}) end).

-spec ctypes_sleep_kills_port() -> [{doc, string()}].
ctypes_sleep_kills_port() -> [{doc, "libc sleep(600) called through ctypes past the deadline plus cancel_grace_ms gets the port killed and restarted."}].
-spec ctypes_sleep_kills_port(ct_suite:ct_config()) -> term().
ctypes_sleep_kills_port(_) ->
    pyport_ct:stuck_kills_port(fun() -> py_event_loop:run(?F, ctypes_sleep, [600], #{timeout => 300}) end).

-spec await_timeout_on_stuck_task_kills_port() -> [{doc, string()}].
await_timeout_on_stuck_task_kills_port() -> [{doc, "create_task + await with a timeout on a task that ignores cancellation: the await timeout starts the grace period, and the port is killed when it ends."}].
-spec await_timeout_on_stuck_task_kills_port(ct_suite:ct_config()) -> term().
await_timeout_on_stuck_task_kills_port(_) ->
    Key = key(),
    pyport_ct:stuck_kills_port(fun() ->
                             Ref = py_event_loop:create_task(?F, ignore_cancel, [Key]),
                             py_event_loop:await(Ref, 300)
                     end).

-spec caller_death_on_ignored_cancel_kills_port() -> [{doc, string()}].
caller_death_on_ignored_cancel_kills_port() -> [{doc, "When a caller dies, its tasks are cancelled; one that ignores the cancel for cancel_grace_ms gets the port killed, failing the loop's other callers explicitly."}].
-spec caller_death_on_ignored_cancel_kills_port(ct_suite:ct_config()) -> term().
caller_death_on_ignored_cancel_kills_port(_) ->
    Key = key(),
    pyport_ct:stuck_kills_port(
      fun() ->
              Self = self(),
              Caller = spawn(fun() ->
                                     Ref = py_event_loop:create_task(?F, ignore_cancel, [Key]),
                                     Self ! {submitted, self()},
                                     receive never -> Ref end
                             end),
              receive {submitted, Caller} -> ok end,
              %% Started (the loop answers in order), then the caller goes.
              {ok, 0} = py_event_loop:run(?F, cancel_count, [Key]),
              exit(Caller, kill),
              {error, timeout}
      end).

-spec cancel_honoured_within_grace_keeps_port() -> [{doc, string()}].
cancel_honoured_within_grace_keeps_port() -> [{doc, "A task that takes a while to clean up after its deadline, but finishes within cancel_grace_ms, does not get the port killed."}].
-spec cancel_honoured_within_grace_keeps_port(ct_suite:ct_config()) -> term().
cancel_honoured_within_grace_keeps_port(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({error, timeout},
                 py_event_loop:run(?F, slow_cleanup, [0.3], #{timeout => 100})),
    %% The clean-up finishes and Python's answer clears the entry.
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end, 10000),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec stuck_port_recovers_repeatedly() -> [{doc, string()}].
stuck_port_recovers_repeatedly() -> [{doc, "A loop that gets stuck again and again is killed and restarted each time: a stuck interpreter never makes a loop unusable for good."}].
-spec stuck_port_recovers_repeatedly(ct_suite:ct_config()) -> term().
stuck_port_recovers_repeatedly(_) ->
    lists:foreach(
      fun(N) ->
              #{os_pid := Old} = pyport_ct:loop_stats(1),
              ?assertEqual({error, timeout},
                           py_event_loop:run(?F, blocking_sleep, [600], #{timeout => 200})),
              _ = pyport_ct:await_restart(1, Old),
              ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
              ?assertMatch(#{restarts := N}, pyport_ct:loop_stats(1))
      end, [1, 2, 3]).

-spec stdout_spam_keeps_serving() -> [{doc, string()}].
stdout_spam_keeps_serving() -> [{doc, "A task flooding fds 1 and 2 with many tiny writes, while other tasks run on the same loop, corrupts no packet and blocks nothing."}].
-spec stdout_spam_keeps_serving(ct_suite:ct_config()) -> term().
stdout_spam_keeps_serving(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Spam = py_event_loop:create_task(?F, spam_stdout_async, [1500, 10]),
    Refs = [{I, py_event_loop:create_task(?H, identity, [I])} || I <- lists:seq(1, 300)],
    [?assertEqual({ok, I}, py_event_loop:await(R, ?PROMPTLY)) || {I, R} <- Refs],
    ?assertEqual({ok, 1500}, py_event_loop:await(Spam, 30000)),
    ?assertEqual({ok, 500}, py_event_loop:run(?F, spam_stdout, [500])),
    ?assertEqual({ok, <<"still fine">>}, py_event_loop:run(?H, identity, [<<"still fine">>])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec unbounded_allocation_under_memory_limit() -> [{doc, string()}].
unbounded_allocation_under_memory_limit() -> [{doc, "A task allocating without bound under max_memory_mb ends in a MemoryError reply or a port restart, never in a hang or harm to the node; the loop serves afterwards."}].
-spec unbounded_allocation_under_memory_limit(ct_suite:ct_config()) -> term().
unbounded_allocation_under_memory_limit(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    NodeMem = erlang:memory(total),
    case py_event_loop:run(?F, allocate_forever, [16], #{timeout => 60000}) of
        {error, {python, <<"MemoryError">>, _, _}} ->
            ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1));
        {error, {python_exit, _}} ->
            _ = pyport_ct:await_restart(1, OsPid)
    end,
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    %% The port's gigabyte never touched the node's heap.
    ?assert(erlang:memory(total) < NodeMem + (256 bsl 20)).

-spec unknown_message_reply_shape() -> [{doc, string()}].
unknown_message_reply_shape() -> [{doc, "The port answers a valid term that is no message with exactly {error, {unknown_message, Term}}, echoing the term, on its output channel."}].
-spec unknown_message_reply_shape(ct_suite:ct_config()) -> term().
unknown_message_reply_shape(_) ->
    %% A port of our own, so that the reply reaches this process unrouted.
    Port = open_port({spawn_executable, pyport_config:executable()},
                     [{packet, 4}, binary, nouse_stdio, exit_status, {args, ["port"]}]),
    {ready, #{protocol := 3}} = receive_packet(Port),
    Strange = [{hello, <<"world">>}, {task, too, few}, {cancel}, 42, [stop],
               #{task => x}, {stop, now}],
    lists:foreach(
      fun(Term) ->
              true = port_command(Port, term_to_binary(Term)),
              Expected = expected_unknown(Term),
              ?assertEqual({error, {unknown_message, Expected}}, receive_packet(Port))
      end, Strange),
    true = port_command(Port, term_to_binary(stop)),
    receive {Port, {exit_status, 0}} -> ok after ?PROMPTLY -> ct:fail(no_exit) end.

-spec valid_term_as_task_fields_is_task_error() -> [{doc, string()}].
valid_term_as_task_fields_is_task_error() -> [{doc, "A task packet whose fields have the wrong types (args not a list, kwargs not a map, bad deadline_ms) is answered with that task's {python, TypeError, ...} error, and the port keeps serving."}].
-spec valid_term_as_task_fields_is_task_error(ct_suite:ct_config()) -> term().
valid_term_as_task_fields_is_task_error(_) ->
    Port = open_port({spawn_executable, pyport_config:executable()},
                     [{packet, 4}, binary, nouse_stdio, exit_status, {args, ["port"]}]),
    {ready, _} = receive_packet(Port),
    Bad = [{task, 1, math, sqrt, not_a_list, #{}, #{}},
           {task, 2, math, sqrt, [4.0], [not_a_map], #{}},
           {task, 3, math, sqrt, [4.0], #{}, #{deadline_ms => <<"soon">>}},
           {task, 4, 42, sqrt, [4.0], #{}, #{}}],
    lists:foreach(
      fun(Packet) ->
              Id = element(2, Packet),
              true = port_command(Port, term_to_binary(Packet)),
              ?assertMatch({result, Id, {error, {python, <<"TypeError">>, _, _}}},
                           receive_packet(Port))
      end, Bad),
    true = port_command(Port, term_to_binary({task, 5, math, sqrt, [4.0], #{}, #{}})),
    ?assertEqual({result, 5, {ok, 2.0}}, receive_packet(Port)),
    port_close(Port).

-spec dead_loop_is_unavailable_not_overloaded() -> [{doc, string()}].
dead_loop_is_unavailable_not_overloaded() -> [{doc, "With max_pending set, a task submitted while the loop's worker is dead but still registered waits for the fresh port and gets its result, not a false {error, overloaded} (nor loop_unavailable: the loop is restarting, not gone)."}].
-spec dead_loop_is_unavailable_not_overloaded(ct_suite:ct_config()) -> term().
dead_loop_is_unavailable_not_overloaded(_) ->
    #{worker := Worker} = pyport_ct:loop_stats(1),
    Self = self(),
    %% The pool cannot take the dead worker's record out meanwhile.
    ok = sys:suspend(py_event_loop_pool),
    Callers =
        try
            MRef = erlang:monitor(process, Worker),
            exit(Worker, kill),
            receive {'DOWN', MRef, process, Worker, _} -> ok end,
            Cs = [spawn_link(fun() -> Self ! {self(), py_event_loop:run(math, sqrt, [4.0],
                                                                        #{timeout => 15000})}
                             end),
                  spawn_link(fun() -> Self ! {self(), py_event_loop:await(
                                                        py_event_loop:create_task(math, sqrt, [4.0]),
                                                        15000)}
                             end)],
            %% Both found the dead worker's record and now wait for the pool.
            timer:sleep(200),
            Cs
        after
            ok = sys:resume(py_event_loop_pool)
        end,
    [?assertEqual({ok, 2.0}, receive {C, R} -> R after 20000 -> no_answer end)
     || C <- Callers].

-spec stuck_port_closed_when_kill_fails() -> [{doc, string()}].
stuck_port_closed_when_kill_fails() -> [{doc, "A stuck port is ended without any external program (no kill(1) on the PATH): the worker closes it, the port's GIL-free watcher kills its process group, callers get {python_exit, {killed, unresponsive}}, and the loop restarts."}].
-spec stuck_port_closed_when_kill_fails(ct_suite:ct_config()) -> term().
stuck_port_closed_when_kill_fails(_) ->
    Path = os:getenv("PATH"),
    true = os:putenv("PATH", "/nonexistent"),
    try
        pyport_ct:stuck_kills_port(fun() -> py_event_loop:run(?F, blocking_sleep, [600], #{timeout => 300}) end)
    after
        true = os:putenv("PATH", Path)
    end.

%% Internal.

-spec receive_packet(port()) -> term().
receive_packet(Port) ->
    receive
        {Port, {data, Bin}} -> binary_to_term(Bin)
    after ?PROMPTLY ->
        ct:fail(no_packet)
    end.

%% What Python echoes: atoms come back as strings (binaries), except the
%% few that mean true/false/None.
-spec expected_unknown(term()) -> term().
expected_unknown(T) when is_atom(T) -> atom_to_binary(T);
expected_unknown(T) when is_tuple(T) ->
    list_to_tuple([expected_unknown(E) || E <- tuple_to_list(T)]);
expected_unknown(T) when is_list(T) -> [expected_unknown(E) || E <- T];
expected_unknown(T) when is_map(T) ->
    maps:from_list([{expected_unknown(K), expected_unknown(V)} || {K, V} <- maps:to_list(T)]);
expected_unknown(T) -> T.

-spec call(atom(), list()) -> term().
call(Func, Args) ->
    {ok, Value} = py_event_loop:run(?H, Func, Args, #{timeout => 10000}),
    Value.

-spec key() -> binary().
key() ->
    list_to_binary(io_lib:format("~p-~p", [erlang:unique_integer([positive]), self()])).

%% Payload behind the 4-byte length the port reads (the workers open
%% their ports in stream mode and frame packets themselves).
-spec frame(binary()) -> binary().
frame(Payload) ->
    <<(byte_size(Payload)):32, Payload/binary>>.

-spec unread_answers_are_bounded() -> [{doc, string()}].
unread_answers_are_bounded() -> [{doc, "A port whose thread floods Erlang with requests while its loop never reads the answers (and no call of it is ever cancelled) does not grow the worker's queue without bound: past 100,000 unread packets the port is killed as unresponsive, and a fresh port serves."}].
-spec unread_answers_are_bounded(ct_suite:ct_config()) -> term().
unread_answers_are_bounded(_) ->
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    Body = term_to_binary({whereis, 1, <<"init">>}),
    Frame = <<(byte_size(Body)):32, Body/binary>>,
    %% Spawned: no caller waits, so no cancel ever makes the port overdue.
    ok = py_event_loop:spawn_task({pyport_loop, 1}, pyport_core, chatty_spin,
                                  [binary:copy(Frame, 1024), 0], #{}),
    _ = pyport_ct:await_restart(1, Old),
    ok = pyport_ct_os:await_gone([Old], ?PROMPTLY),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec port_refusing_input_is_stuck() -> [{doc, string()}].
port_refusing_input_is_stuck() -> [{doc, "A port that keeps sending packets (a thread of its own writes them) but no longer reads its input (the loop spins, swallowing cancels) makes no progress: once the cancel the worker could not write is overdue, the port is killed as unresponsive, and a fresh port serves."}].
-spec port_refusing_input_is_stuck(ct_suite:ct_config()) -> term().
port_refusing_input_is_stuck(_) ->
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    Body = term_to_binary({log, debug, <<"chatty">>, <<"tick">>}),
    Frame = <<(byte_size(Body)):32, Body/binary>>,
    Self = self(),
    _ = spawn_link(fun() ->
                           Self ! {stuck, py_event_loop:run({pyport_loop, 1}, pyport_core,
                                                            chatty_spin, [Frame, 0.05],
                                                            #{timeout => 1500})}
                   end),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end, ?PROMPTLY),
    timer:sleep(300),
    %% More than the port's busy limit, which Python no longer reads: the
    %% timed-out caller's cancel finds the port refusing input.
    ok = py_event_loop:spawn_task({pyport_loop, 1}, builtins, len,
                                  [binary:copy(<<"x">>, 4 bsl 20)], #{}),
    receive
        {stuck, Stuck} -> ?assertEqual({error, timeout}, Stuck)
    after 10000 -> ct:fail(stuck_caller_not_answered)
    end,
    _ = pyport_ct:await_restart(1, Old),
    %% The stuck OS process is gone, not only its port.
    ok = pyport_ct_os:await_gone([Old], ?PROMPTLY),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).
