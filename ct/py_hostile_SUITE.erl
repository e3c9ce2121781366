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
%% max_atoms and max_output_packet of the decode-boundary cases.
-define(ATOM_BUDGET, 1000).
-define(SMALL_PACKET, 65536).
%% The property case through a real port: how many arbitrary frames, and
%% the loop's atom budget meanwhile.
-define(ARBITRARY_FRAMES, 40).
-define(ARBITRARY_MAX_ATOMS, 300).

-spec all() -> [atom()].
all() ->
    [%% Rust side: results, runaway code, memory.
     huge_int_result_is_task_error, runaway_sync_code_is_interrupted,
     runaway_sync_code_catching_the_deadline_kills_port,
     runaway_sync_code_in_c_kills_port, big_result_memory_is_released,
     memory_limit_is_data_not_address_space,
     encoder_allocation_failure_is_memory_error,
     %% Port side: exceptions, exits, fork, channel fds, environment.
     base_exception_is_task_error, generator_exit_is_task_error,
     base_exception_in_coroutine_is_task_error, unprintable_exception_is_task_error,
     base_exception_in_exec_is_caller_error, spawned_base_exception_is_logged,
     sys_exit_is_task_error, keyboard_interrupt_is_task_error,
     sigint_does_not_stop_the_port, loop_stop_from_task_is_refused,
     loop_close_from_task_is_refused, fork_child_returning_does_not_serve,
     fork_child_exit_does_not_break_parent, stray_writes_to_fd_4_are_harmless,
     inherited_pythonpath_cannot_replace_package,
     %% Erlang side: load and lifetimes.
     mass_caller_death_is_cleaned_up, out_of_range_timeouts_never_leak,
     stopped_port_does_not_hold_callers, calls_during_restart_wait_for_fresh_port,
     calls_during_restart_overloaded_beyond_bound,
     ignored_cancel_on_serving_port_costs_the_task,
     restart_waiters_released_when_pool_goes,
     %% == BEAM decode boundary ==
     returned_atoms_beyond_budget_are_task_error,
     forged_atom_frames_cannot_exhaust_atoms,
     compressed_frame_is_refused,
     garbage_on_channel_kills_port_promptly,
     bad_output_frames_kill_port,
     bad_frame_log_is_bounded,
     planted_symlink_is_not_followed,
     stderr_files_are_private_and_removed,
     env_option_sets_and_unsets,
     send_to_init_is_refused_when_restricted,
     send_to_caller_allowed_when_restricted,
     result_over_output_limit_is_task_error,
     arbitrary_output_never_hangs_callers,
     stalled_forged_frame_is_unresponsive].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(inherited_pythonpath_cannot_replace_package = Case, Config) ->
    %% Set before the port starts: it inherits the node's environment.
    Fake = filename:join(?config(priv_dir, Config), "fake_erlang"),
    ok = filelib:ensure_dir(filename:join([Fake, "erlang", "x"])),
    ok = file:write_file(filename:join([Fake, "erlang", "__init__.py"]),
                         <<"raise SystemExit('the fake erlang package was imported')\n">>),
    true = os:putenv("PYTHONPATH", Fake),
    true = os:putenv("PYPORT_PYTHON_DIR", Fake),
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS} | case_env(Case)]),
    [{fake_dir, Fake} | Config];
init_per_testcase(Case, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS} | case_env(Case)]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(inherited_pythonpath_cannot_replace_package, _Config) ->
    true = os:unsetenv("PYTHONPATH"),
    true = os:unsetenv("PYPORT_PYTHON_DIR"),
    ok = pyport_ct:release_logs(),
    pyport_ct:stop();
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
case_env(Case) when Case =:= runaway_sync_code_is_interrupted;
                    Case =:= runaway_sync_code_catching_the_deadline_kills_port;
                    Case =:= runaway_sync_code_in_c_kills_port ->
    [{cancel_grace_ms, ?GRACE}];
case_env(memory_limit_is_data_not_address_space) -> [{max_memory_mb, 600}];
case_env(encoder_allocation_failure_is_memory_error) -> [{max_memory_mb, 600}];
case_env(Case) when Case =:= returned_atoms_beyond_budget_are_task_error;
                    Case =:= forged_atom_frames_cannot_exhaust_atoms ->
    [{max_atoms, ?ATOM_BUDGET}];
case_env(bad_output_frames_kill_port) -> [{max_output_packet, ?SMALL_PACKET}];
case_env(result_over_output_limit_is_task_error) -> [{max_output_packet, ?SMALL_PACKET}];
case_env(stalled_forged_frame_is_unresponsive) -> [{cancel_grace_ms, 500}];
case_env(arbitrary_output_never_hangs_callers) -> [{max_atoms, ?ARBITRARY_MAX_ATOMS}];
case_env(Case) when Case =:= send_to_init_is_refused_when_restricted;
                    Case =:= send_to_caller_allowed_when_restricted ->
    [{send_allow, #{names => [pyport_ct_allowed], pids => callers}}];
case_env(_) -> [].

%% Helpers.

%% Starts a bystander on loop 1: a task that naps Seconds and answers ok.
-spec bystander(number()) -> reference().
bystander(Seconds) ->
    py_event_loop:create_task({pyport_loop, 1}, ?X, nap, [Seconds, ok], #{}).

%% The bystander's answer: {ok, <<"ok">>} when the loop survived (the atom
%% comes back as a binary).
-spec bystander_result(reference()) -> term().
bystander_result(Ref) ->
    py_event_loop:await(Ref, ?PROMPTLY).

%% Runs a fixture on loop 1 with a timeout.
-spec run(atom(), list(), timeout()) -> term().
run(F, A, Timeout) ->
    py_event_loop:run({pyport_loop, 1}, ?X, F, A, #{timeout => Timeout}).

%% == Port side: exceptions, exits, fork, channel fds, environment ==

%% Runs Provoke while a bystander naps on loop 1: the bystander must get
%% its answer and loop 1 must still be the same OS process afterwards.
-spec with_bystander(fun(() -> Result)) -> Result.
with_bystander(Provoke) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(1.0),
    Result = Provoke(),
    %% nap returns its argument: the atom ok comes back as a binary.
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)),
    ?assertEqual({ok, 3}, run(byte_size, [<<"abc">>], ?PROMPTLY)),
    Result.

-spec base_exception_is_task_error() -> [{doc, string()}].
base_exception_is_task_error() -> [{doc, "A plain function raising a BaseException subclass gets {python, ...}; the loop goes on."}].
-spec base_exception_is_task_error(ct_suite:ct_config()) -> term().
base_exception_is_task_error(_) ->
    R = with_bystander(fun() -> run(raise_base, [], ?PROMPTLY) end),
    ?assertMatch({error, {python, <<"Custom">>, <<"a BaseException subclass">>, _}}, R),
    {error, {python, _, _, Tb}} = R,
    ?assertNotEqual(nomatch, binary:match(Tb, <<"raise_base">>)).

-spec generator_exit_is_task_error() -> [{doc, string()}].
generator_exit_is_task_error() -> [{doc, "GeneratorExit raised by a plain function is that task's error."}].
-spec generator_exit_is_task_error(ct_suite:ct_config()) -> term().
generator_exit_is_task_error(_) ->
    ?assertMatch({error, {python, <<"GeneratorExit">>,
                          <<"generator exit from a plain function">>, _}},
                 with_bystander(fun() -> run(raise_generator_exit, [], ?PROMPTLY) end)).

-spec base_exception_in_coroutine_is_task_error() -> [{doc, string()}].
base_exception_in_coroutine_is_task_error() -> [{doc, "A coroutine raising a BaseException subclass is that task's error."}].
-spec base_exception_in_coroutine_is_task_error(ct_suite:ct_config()) -> term().
base_exception_in_coroutine_is_task_error(_) ->
    ?assertMatch({error, {python, <<"Custom">>,
                          <<"a BaseException subclass from a coroutine">>, _}},
                 with_bystander(fun() -> run(raise_base_async, [], ?PROMPTLY) end)).

-spec unprintable_exception_is_task_error() -> [{doc, string()}].
unprintable_exception_is_task_error() -> [{doc, "An exception whose __str__ and __repr__ raise still becomes {python, Type, Message, Traceback}."}].
-spec unprintable_exception_is_task_error(ct_suite:ct_config()) -> term().
unprintable_exception_is_task_error(_) ->
    R = with_bystander(fun() -> run(raise_bad_str, [], ?PROMPTLY) end),
    ?assertMatch({error, {python, <<"BadStr">>, <<"<unprintable BadStr object>">>, _}}, R),
    {error, {python, _, _, Tb}} = R,
    ?assertNotEqual(nomatch, binary:match(Tb, <<"raise_bad_str">>)).

-spec base_exception_in_exec_is_caller_error() -> [{doc, string()}].
base_exception_in_exec_is_caller_error() -> [{doc, "exec/eval raising SystemExit or KeyboardInterrupt answer the caller with the error."}].
-spec base_exception_in_exec_is_caller_error(ct_suite:ct_config()) -> term().
base_exception_in_exec_is_caller_error(_) ->
    Loop = {pyport_loop, 1},
    with_bystander(
      fun() ->
              ?assertMatch({error, {python, <<"SystemExit">>, <<"3">>, _}},
                           py_event_loop:exec(Loop, <<"import sys\nsys.exit(3)\n">>)),
              ?assertMatch({error, {python, <<"KeyboardInterrupt">>, _, _}},
                           py_event_loop:eval(Loop, <<"(_ for _ in ()).throw(KeyboardInterrupt)">>))
      end).

-spec spawned_base_exception_is_logged() -> [{doc, string()}].
spawned_base_exception_is_logged() -> [{doc, "A spawned task (no reply) raising SystemExit is logged; the loop goes on."}].
-spec spawned_base_exception_is_logged(ct_suite:ct_config()) -> term().
spawned_base_exception_is_logged(_) ->
    ok = pyport_ct:capture_logs(),
    with_bystander(
      fun() ->
              ok = py_event_loop:spawn_task({pyport_loop, 1}, ?X, call_sys_exit_async, [7], #{}),
              pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"failed: SystemExit">>) end,
                                  ?PROMPTLY)
      end).

-spec sys_exit_is_task_error() -> [{doc, string()}].
sys_exit_is_task_error() -> [{doc, "sys.exit() in a plain function or a coroutine is that task's error; the port stays."}].
-spec sys_exit_is_task_error(ct_suite:ct_config()) -> term().
sys_exit_is_task_error(_) ->
    ?assertMatch({error, {python, <<"SystemExit">>, <<"0">>, _}},
                 with_bystander(fun() -> run(call_sys_exit, [0], ?PROMPTLY) end)),
    ?assertMatch({error, {python, <<"SystemExit">>, <<"bye">>, _}},
                 with_bystander(fun() -> run(call_sys_exit_async, [<<"bye">>], ?PROMPTLY) end)).

-spec keyboard_interrupt_is_task_error() -> [{doc, string()}].
keyboard_interrupt_is_task_error() -> [{doc, "KeyboardInterrupt raised by a task is that task's error; the port stays."}].
-spec keyboard_interrupt_is_task_error(ct_suite:ct_config()) -> term().
keyboard_interrupt_is_task_error(_) ->
    ?assertMatch({error, {python, <<"KeyboardInterrupt">>, _, _}},
                 with_bystander(fun() -> run(raise_keyboard_interrupt, [], ?PROMPTLY) end)).

-spec sigint_does_not_stop_the_port() -> [{doc, string()}].
sigint_does_not_stop_the_port() -> [{doc, "A stray SIGINT is logged and ignored; a task can still take SIGINT with add_signal_handler."}].
-spec sigint_does_not_stop_the_port(ct_suite:ct_config()) -> term().
sigint_does_not_stop_the_port(_) ->
    ok = pyport_ct:capture_logs(),
    ?assertEqual({ok, <<"survived">>},
                 with_bystander(fun() -> run(send_sigint, [], ?PROMPTLY) end)),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"SIGINT ignored">>) end,
                            ?PROMPTLY),
    ?assertEqual({ok, <<"handled">>},
                 with_bystander(fun() -> run(sigint_handled_by_task, [], ?PROMPTLY) end)),
    %% Removing its handler puts the port's back, not the default one.
    ?assertEqual({ok, <<"survived">>},
                 with_bystander(fun() -> run(send_sigint, [], ?PROMPTLY) end)).

-spec loop_stop_from_task_is_refused() -> [{doc, string()}].
loop_stop_from_task_is_refused() -> [{doc, "loop.stop() from a plain function or a coroutine raises RuntimeError in that task."}].
-spec loop_stop_from_task_is_refused(ct_suite:ct_config()) -> term().
loop_stop_from_task_is_refused(_) ->
    [?assertMatch({error, {python, <<"RuntimeError">>,
                           <<"the port's event loop is stopped by Erlang, not by tasks">>, _}},
                  with_bystander(fun() -> run(F, [], ?PROMPTLY) end))
     || F <- [stop_loop, stop_loop_async]].

-spec loop_close_from_task_is_refused() -> [{doc, string()}].
loop_close_from_task_is_refused() -> [{doc, "loop.close() from a plain function or a coroutine raises RuntimeError; replies keep flowing."}].
-spec loop_close_from_task_is_refused(ct_suite:ct_config()) -> term().
loop_close_from_task_is_refused(_) ->
    [?assertMatch({error, {python, <<"RuntimeError">>,
                           <<"the port's event loop is closed by Erlang, not by tasks">>, _}},
                  with_bystander(fun() -> run(F, [], ?PROMPTLY) end))
     || F <- [close_loop, close_loop_async]].

-spec fork_child_returning_does_not_serve() -> [{doc, string()}].
fork_child_returning_does_not_serve() -> [{doc, "A forked child returning into the loop exits at once; the parent alone answers 50 large calls."}].
-spec fork_child_returning_does_not_serve(ct_suite:ct_config()) -> term().
fork_child_returning_does_not_serve(_) ->
    ?assertEqual({ok, <<"parent">>},
                 with_bystander(fun() -> run(fork_and_return, [], ?PROMPTLY) end)),
    {ok, [<<"parent">>, Child]} = with_bystander(fun() -> run(fork_and_report, [], ?PROMPTLY) end),
    ok = pyport_ct:wait_until(fun() -> not pyport_ct:os_pid_alive(Child) end, ?PROMPTLY),
    Big = binary:copy(<<"x">>, 200 * 1024),
    Refs = [py_event_loop:create_task({pyport_loop, 1}, ?X, byte_size, [Big], #{})
            || _ <- lists:seq(1, 50)],
    ?assertEqual(lists:duplicate(50, {ok, 200 * 1024}),
                 [py_event_loop:await(R, ?PROMPTLY) || R <- Refs]).

-spec fork_child_exit_does_not_break_parent() -> [{doc, string()}].
fork_child_exit_does_not_break_parent() -> [{doc, "A forked child ending with sys.exit(0) leaves the parent's registrations alone."}].
-spec fork_child_exit_does_not_break_parent(ct_suite:ct_config()) -> term().
fork_child_exit_does_not_break_parent(_) ->
    {ok, Child} = with_bystander(fun() -> run(fork_and_exit, [], ?PROMPTLY) end),
    ?assert(is_integer(Child)),
    %% Timers, the wake-up pipe and the channel all still work.
    ?assertEqual({ok, <<"ok">>}, with_bystander(fun() -> run(nap, [0.2, ok], ?PROMPTLY) end)),
    Big = binary:copy(<<"y">>, 200 * 1024),
    ?assertEqual({ok, 200 * 1024}, run(byte_size, [Big], ?PROMPTLY)).

-spec stray_writes_to_fd_4_are_harmless() -> [{doc, string()}].
stray_writes_to_fd_4_are_harmless() -> [{doc, "fd 4 is /dev/null in the port: a task writing garbage to it corrupts nothing."}].
-spec stray_writes_to_fd_4_are_harmless(ct_suite:ct_config()) -> term().
stray_writes_to_fd_4_are_harmless(_) ->
    ?assertEqual({ok, 7},
                 with_bystander(fun() -> run(write_fd, [4, <<"garbage">>], ?PROMPTLY) end)),
    ?assertEqual({ok, 3}, with_bystander(fun() -> run(write_fd, [3, <<"abc">>], ?PROMPTLY) end)),
    ?assertEqual({ok, <<"ok">>}, run(nap, [0.01, ok], ?PROMPTLY)).

-spec inherited_pythonpath_cannot_replace_package() -> [{doc, string()}].
inherited_pythonpath_cannot_replace_package() -> [{doc, "PYTHONPATH and PYPORT_PYTHON_DIR inherited from the node cannot replace pyport's erlang package."}].
-spec inherited_pythonpath_cannot_replace_package(ct_suite:ct_config()) -> term().
inherited_pythonpath_cannot_replace_package(Config) ->
    Fake = ?config(fake_dir, Config),
    %% The variables did reach the port...
    ?assertEqual({ok, list_to_binary(Fake)}, run(getenv, [<<"PYPORT_PYTHON_DIR">>], ?PROMPTLY)),
    %% ...and the package is still pyport's own.
    {ok, File} = run(erlang_package_file, [], ?PROMPTLY),
    ?assertEqual(<<"/python/erlang/__init__.py">>,
                 binary:part(File, byte_size(File), -byte_size(<<"/python/erlang/__init__.py">>))),
    ?assertEqual(nomatch, string:find(File, Fake)).

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
    pyport_ct:stuck_kills_port(fun() -> run(spin_catching, [], 300) end).

-spec runaway_sync_code_in_c_kills_port() -> [{doc, string()}].
runaway_sync_code_in_c_kills_port() -> [{doc, "A plain function blocked in C (libc sleep through ctypes) cannot be interrupted in Python: the port is killed after cancel_grace_ms, the bystander gets {python_exit, _}, and a fresh port serves."}].
-spec runaway_sync_code_in_c_kills_port(ct_suite:ct_config()) -> term().
runaway_sync_code_in_c_kills_port(_) ->
    pyport_ct:stuck_kills_port(
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

-spec restart_waiters_released_when_pool_goes() -> [{doc, string()}].
restart_waiters_released_when_pool_goes() -> [{doc, "A caller waiting for a restarting loop gets {error, loop_unavailable} at once, not at its timeout, when the pool it waits on goes (the application stopping, or its supervisor giving up)."}].
-spec restart_waiters_released_when_pool_goes(ct_suite:ct_config()) -> term().
restart_waiters_released_when_pool_goes(_) ->
    #{worker := Worker} = pyport_ct:loop_stats(1),
    Bystander = bystander(5.0),
    Self = self(),
    %% Holds loop 1 in `restarting`: its supervisor cannot start a worker.
    ok = sys:suspend(pyport_loop_sup),
    try
        MRef = erlang:monitor(process, Worker),
        exit(Worker, kill),
        receive {'DOWN', MRef, process, Worker, _} -> ok end,
        ok = pyport_ct:wait_until(
               fun() -> pyport_registry:lookup(1) =:= restarting end, ?PROMPTLY),
        Caller = spawn_link(fun() -> Self ! {self(), run(nap, [0, 1], 30000)} end),
        %% It is waiting (nothing came back yet).
        timer:sleep(300),
        ?assertEqual([], [R || {P, R} <- pyport_ct:mailbox(), P =:= Caller]),
        T0 = erlang:monotonic_time(millisecond),
        exit(whereis(py_event_loop_pool), kill),
        receive
            {Caller, Result} ->
                ?assertEqual({error, loop_unavailable}, Result),
                ?assert(erlang:monotonic_time(millisecond) - T0 < 1000)
        after ?PROMPTLY ->
            error(waiter_not_released)
        end
    after
        %% Gone already if the pool's death took it down (rest_for_one).
        catch sys:resume(pyport_loop_sup)
    end,
    ?assertMatch({error, {worker_down, _}}, bystander_result(Bystander)),
    %% The application restarts the pool and the loops.
    ok = pyport_ct:wait_until(fun() -> run(nap, [0, 1], 1000) =:= {ok, 1} end, ?PROMPTLY).

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

%% == BEAM decode boundary ==

-spec returned_atoms_beyond_budget_are_task_error() -> [{doc, string()}].
returned_atoms_beyond_budget_are_task_error() -> [{doc, "A task that raises its own atom bound and returns 200000 new atoms gets {error, {atom_limit, Max}}; the node creates at most max_atoms of them and the loop keeps serving."}].
-spec returned_atoms_beyond_budget_are_task_error(ct_suite:ct_config()) -> term().
returned_atoms_beyond_budget_are_task_error(_) ->
    By = bystander(1.0),
    Before = erlang:system_info(atom_count),
    ?assertEqual({error, {atom_limit, ?ATOM_BUDGET}}, run(many_atoms, [200000], 60000)),
    Grown = erlang:system_info(atom_count) - Before,
    ct:log("atoms grown: ~b", [Grown]),
    ?assert(Grown =< ?ATOM_BUDGET + 50),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    %% Within the budget (nothing new), the same loop still serves.
    ?assertEqual({ok, 3}, run(nap, [0, 3], ?PROMPTLY)),
    ?assert(maps:get(atoms_created, pyport_ct:loop_stats(1)) =< ?ATOM_BUDGET).

-spec forged_atom_frames_cannot_exhaust_atoms() -> [{doc, string()}].
forged_atom_frames_cannot_exhaust_atoms() -> [{doc, "Raw frames of new atoms written to the output channel create at most max_atoms atoms; the rest are dropped (only the first ten logged), the node and the bystander are fine."}].
-spec forged_atom_frames_cannot_exhaust_atoms(ct_suite:ct_config()) -> term().
forged_atom_frames_cannot_exhaust_atoms(_) ->
    ok = pyport_ct:capture_logs(),
    By = bystander(1.0),
    Before = erlang:system_info(atom_count),
    ?assertEqual({ok, 50}, run(forge_atom_frames, [50, 200], 60000)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    Grown = erlang:system_info(atom_count) - Before,
    ct:log("atoms grown: ~b of 10000 forged", [Grown]),
    ?assert(Grown =< ?ATOM_BUDGET + 50),
    ?assert(maps:get(atoms_created, pyport_ct:loop_stats(1)) =< ?ATOM_BUDGET),
    Refused = count_logs(<<"atom budget">>),
    ct:log("refusals logged: ~b", [Refused]),
    ?assert(Refused >= 1 andalso Refused =< 10).

-spec compressed_frame_is_refused() -> [{doc, string()}].
compressed_frame_is_refused() -> [{doc, "A compressed frame that would inflate to 512 MB is refused without being inflated (node memory stays well under +500 MB); the port is killed as bad_output and restarted."}].
-spec compressed_frame_is_refused(ct_suite:ct_config()) -> term().
compressed_frame_is_refused(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(30.0),
    Base = erlang:memory(total),
    Sampler = spawn_link(fun() -> sample_memory(Base) end),
    Result = run(forge_compressed, [512], 60000),
    ?assertEqual({error, {python_exit, {killed, bad_output}}}, Result),
    ?assertMatch({error, {python_exit, {killed, bad_output}}}, bystander_result(By)),
    _ = pyport_ct:await_restart(1, OsPid),
    Sampler ! {peak, self()},
    Peak = receive {peak, P} -> P after ?PROMPTLY -> ct:fail(no_peak) end,
    ct:log("memory: base ~b, peak growth ~b bytes", [Base, Peak]),
    ?assert(Peak < 500 bsl 20),
    ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)).

-spec garbage_on_channel_kills_port_promptly() -> [{doc, string()}].
garbage_on_channel_kills_port_promptly() -> [{doc, "Unframed bytes on the output channel (read as a 1.7 GB length) kill the port at once: a caller waiting with an infinity timeout gets {python_exit, {killed, bad_output}} within seconds, and the loop restarts."}].
-spec garbage_on_channel_kills_port_promptly(ct_suite:ct_config()) -> term().
garbage_on_channel_kills_port_promptly(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Self = self(),
    Waiter = spawn_link(fun() ->
                                Self ! {waited, self(), run(nap, [3600, late], infinity)}
                        end),
    %% The waiter's task is in before the garbage.
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end,
                              ?PROMPTLY),
    T0 = erlang:monotonic_time(millisecond),
    _ = run(forge_garbage, [<<"hello world, this is not a frame">>], ?PROMPTLY),
    receive
        {waited, Waiter, Got} ->
            ?assertEqual({error, {python_exit, {killed, bad_output}}}, Got)
    after ?PROMPTLY ->
        ct:fail(infinity_caller_not_answered)
    end,
    ct:log("answered after ~b ms", [erlang:monotonic_time(millisecond) - T0]),
    _ = pyport_ct:await_restart(1, OsPid),
    ?assertEqual({ok, 2}, run(nap, [0, 2], ?PROMPTLY)).

-spec bad_output_frames_kill_port() -> [{doc, string()}].
bad_output_frames_kill_port() -> [{doc, "A compressed frame, a frame announcing more than max_output_packet, a malformed term, and a plausible length followed by what is not a packet each kill the port as bad_output; the caller is answered, the loop restarts each time."}].
-spec bad_output_frames_kill_port(ct_suite:ct_config()) -> term().
bad_output_frames_kill_port(_) ->
    Compressed = term_to_binary(binary:copy(<<0>>, 10000), [compressed]),
    Frames = [frame(Compressed),
              <<(?SMALL_PACKET + 1):32, 0, 0, 0>>,
              frame(<<131, 104, 3, 255, 255>>),
              %% A plausible length, then not a packet: refused at once,
              %% before it swallows the frames behind it.
              <<0, 0, 16, 0, "garbage!">>],
    lists:foreach(
      fun(Frame) ->
              #{os_pid := OsPid} = pyport_ct:loop_stats(1),
              By = bystander(30.0),
              ?assertEqual({error, {python_exit, {killed, bad_output}}},
                           run(forge_raw, [Frame], ?PROMPTLY)),
              ?assertEqual({error, {python_exit, {killed, bad_output}}}, bystander_result(By)),
              _ = pyport_ct:await_restart(1, OsPid)
      end, Frames),
    ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)).

-spec bad_frame_log_is_bounded() -> [{doc, string()}].
bad_frame_log_is_bounded() -> [{doc, "A frame of 8 MB the worker does not expect is logged in a few hundred bytes, not the whole frame."}].
-spec bad_frame_log_is_bounded(ct_suite:ct_config()) -> term().
bad_frame_log_is_bounded(_) ->
    ok = pyport_ct:capture_logs(),
    Big = term_to_binary({unexpected_from_ct, binary:copy(<<"z">>, 8 bsl 20)}),
    By = bystander(1.0),
    ?assertEqual({ok, byte_size(Big) + 4}, run(forge_raw, [frame(Big)], ?PROMPTLY)),
    #{msg := {Format, Args}} =
        pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"unexpected_from_ct">>) end,
                            ?PROMPTLY),
    Size = iolist_size(io_lib:format(Format, Args)),
    ct:log("logged ~b bytes", [Size]),
    ?assert(Size =< 1000),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)).

-spec planted_symlink_is_not_followed() -> [{doc, string()}].
planted_symlink_is_not_followed() -> [{doc, "Symlinks planted at the old predictable start-up stderr paths (/tmp/pyport-<pid>-<loop>-<n>.stderr) are not followed: the victim file keeps its content."}].
-spec planted_symlink_is_not_followed(ct_suite:ct_config()) -> term().
planted_symlink_is_not_followed(Config) ->
    pyport_ct:stop(),
    Tmp = filename:join(?config(priv_dir, Config), "tmp"),
    ok = filelib:ensure_path(Tmp),
    Victim = filename:join(?config(priv_dir, Config), "victim"),
    ok = file:write_file(Victim, <<"precious">>),
    %% unique_integer/1 counts up: the next starts take the next ones.
    Next = erlang:unique_integer([positive]),
    [ok = file:make_symlink(Victim, filename:join(Tmp, io_lib:format("pyport-~s-~b-~b.stderr",
                                                                      [os:getpid(), L, N])))
     || L <- lists:seq(1, ?NUM_LOOPS), N <- lists:seq(Next, Next + 3000)],
    Old = os:getenv("TMPDIR"),
    true = os:putenv("TMPDIR", Tmp),
    try
        ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
        ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)),
        ?assertEqual({ok, <<"precious">>}, file:read_file(Victim))
    after
        restore_env("TMPDIR", Old)
    end.

-spec stderr_files_are_private_and_removed() -> [{doc, string()}].
stderr_files_are_private_and_removed() -> [{doc, "The start-up stderr files live in a directory of mode 0700 with a random name, emptied once the ports are up and removed when the application stops."}].
-spec stderr_files_are_private_and_removed(ct_suite:ct_config()) -> term().
stderr_files_are_private_and_removed(_) ->
    {ok, Dir} = pyport_tmpdir:dir(),
    {ok, #{mode := Mode, type := directory}} = file_info(Dir),
    ?assertEqual(8#700, Mode band 8#777),
    ?assertEqual({ok, []}, file:list_dir(Dir)),
    pyport_ct:stop(),
    ?assertEqual({error, enoent}, file:read_file_info(Dir)).

-spec env_option_sets_and_unsets() -> [{doc, string()}].
env_option_sets_and_unsets() -> [{doc, "The env option sets and unsets variables in the port's environment (global, and merged per loop); everything else is inherited from the node."}].
-spec env_option_sets_and_unsets(ct_suite:ct_config()) -> term().
env_option_sets_and_unsets(_) ->
    pyport_ct:stop(),
    true = os:putenv("PYPORT_CT_GONE", "inherited"),
    true = os:putenv("PYPORT_CT_KEPT", "inherited"),
    try
        ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS},
                              {env, [{"PYPORT_CT_FOO", "bar"}, {<<"PYPORT_CT_GONE">>, false}]},
                              {loops, #{2 => #{env => [{"PYPORT_CT_FOO", <<"two">>}]}}}]),
        Get = fun(Loop, Name) ->
                      py_event_loop:run({pyport_loop, Loop}, ?X, getenv, [Name],
                                        #{timeout => ?PROMPTLY})
              end,
        ?assertEqual({ok, <<"bar">>}, Get(1, <<"PYPORT_CT_FOO">>)),
        ?assertEqual({ok, none}, Get(1, <<"PYPORT_CT_GONE">>)),
        ?assertEqual({ok, <<"inherited">>}, Get(1, <<"PYPORT_CT_KEPT">>)),
        ?assertEqual({ok, <<"two">>}, Get(2, <<"PYPORT_CT_FOO">>)),
        ?assertEqual({ok, none}, Get(2, <<"PYPORT_CT_GONE">>)),
        ?assertEqual({ok, <<"inherited">>}, Get(2, <<"PYPORT_CT_KEPT">>))
    after
        os:unsetenv("PYPORT_CT_GONE"),
        os:unsetenv("PYPORT_CT_KEPT")
    end.

-spec send_to_init_is_refused_when_restricted() -> [{doc, string()}].
send_to_init_is_refused_when_restricted() -> [{doc, "With send_allow restricted, a task sending {stop, stop} to init (by name or pid) gets ProcessError (not_allowed), whereis hides it, and the node stays up."}].
-spec send_to_init_is_refused_when_restricted(ct_suite:ct_config()) -> term().
send_to_init_is_refused_when_restricted(_) ->
    By = bystander(1.0),
    {ok, ByName} = run(send_to, [<<"init">>, {stop, stop}], ?PROMPTLY),
    ?assertMatch({match, _}, re:run(ByName, <<"ProcessError.*not_allowed">>)),
    {ok, ByPid} = run(send_to, [whereis(init), {stop, stop}], ?PROMPTLY),
    ?assertMatch({match, _}, re:run(ByPid, <<"ProcessError.*not_allowed">>)),
    ?assertEqual({ok, none}, run(whereis, [<<"init">>], ?PROMPTLY)),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ?assert(is_process_alive(whereis(init))),
    ?assertMatch([_ | _], [A || {pyport, _, _} = A <- application:which_applications()]).

-spec send_to_caller_allowed_when_restricted() -> [{doc, string()}].
send_to_caller_allowed_when_restricted() -> [{doc, "With send_allow restricted, a task may still send to its caller and to an allow-listed name, and look that name up."}].
-spec send_to_caller_allowed_when_restricted(ct_suite:ct_config()) -> term().
send_to_caller_allowed_when_restricted(_) ->
    Self = self(),
    ?assertEqual({ok, <<"sent">>}, run(send_to, [Self, to_caller], ?PROMPTLY)),
    receive <<"to_caller">> -> ok after ?PROMPTLY -> ct:fail(no_message) end,
    Allowed = spawn_link(fun() -> receive M -> Self ! {allowed_got, M} end end),
    true = register(pyport_ct_allowed, Allowed),
    ?assertEqual({ok, <<"sent">>}, run(send_to, [<<"pyport_ct_allowed">>, hi], ?PROMPTLY)),
    receive {allowed_got, <<"hi">>} -> ok after ?PROMPTLY -> ct:fail(no_message) end,
    ?assertEqual({ok, none}, run(whereis, [<<"pyport_ct_never_registered">>], ?PROMPTLY)),
    %% A pid with no task on the loop is not reachable.
    Other = spawn_link(fun() -> receive _ -> ok end end),
    {ok, ToOther} = run(send_to, [Other, hi], ?PROMPTLY),
    ?assertMatch({match, _}, re:run(ToOther, <<"not_allowed">>)).

-spec result_over_output_limit_is_task_error() -> [{doc, string()}].
result_over_output_limit_is_task_error() -> [{doc, "A legitimate result, or an erlang.send, larger than max_output_packet is refused in the port as that task's OverflowError: the port never writes a frame the worker would have to treat as bad output, so the loop and its bystander live on."}].
-spec result_over_output_limit_is_task_error(ct_suite:ct_config()) -> term().
result_over_output_limit_is_task_error(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    By = bystander(1.0),
    {error, {python, <<"OverflowError">>, Msg, _}} = run(big_bytes, [1], ?PROMPTLY),
    ?assertMatch({match, _}, re:run(Msg, <<"max_output_packet">>)),
    {ok, Refused} = run(send_to, [self(), binary:copy(<<"x">>, 2 * ?SMALL_PACKET)], ?PROMPTLY),
    ?assertEqual(<<"OverflowError">>, Refused),
    ?assertEqual({ok, <<"ok">>}, bystander_result(By)),
    ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec arbitrary_output_never_hangs_callers() -> [{doc, string()}].
arbitrary_output_never_hangs_callers() -> [{doc, "Property through a real port: arbitrary output (random bytes, valid terms of every shape, compressed, atom-heavy, mutated, framed or not) written to the channel while a caller waits with an infinity timeout: every caller is answered (a result, or {python_exit, {killed, bad_output}} when the stream broke), the node creates at most the loop's max_atoms atoms, and its memory stays bounded."}].
-spec arbitrary_output_never_hangs_callers(ct_suite:ct_config()) -> term().
arbitrary_output_never_hangs_callers(_) ->
    _ = rand:seed(exsss, {30, 11, 2026}),
    Atoms0 = erlang:system_info(atom_count),
    Mem0 = erlang:memory(total),
    Sampler = spawn_link(fun() -> sample_memory(Mem0) end),
    Outcomes = [forge_one(I) || I <- lists:seq(1, ?ARBITRARY_FRAMES)],
    Sampler ! {peak, self()},
    Growth = receive {peak, P} -> P after ?PROMPTLY -> ct:fail(no_peak) end,
    Created = erlang:system_info(atom_count) - Atoms0,
    ct:log("outcomes ~p~natoms created ~b, memory peak growth ~b KiB",
           [count(Outcomes), Created, Growth div 1024]),
    %% A few atoms come from the test harness itself (logging, CT).
    ?assert(Created =< ?ARBITRARY_MAX_ATOMS + 100, Created),
    ?assert(Growth < 200 bsl 20, Growth),
    ?assertEqual({ok, 4.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [16.0], #{})).

-spec stalled_forged_frame_is_unresponsive() -> [{doc, string()}].
stalled_forged_frame_is_unresponsive() -> [{doc, "A forged frame header that announces 100 MB and never delivers them swallows the port's real output while the port keeps writing; bytes that only grow that frame are not progress, so once a caller's cancel is overdue the port is killed as unresponsive and every waiting caller, even one with an infinity timeout, is answered."}].
-spec stalled_forged_frame_is_unresponsive(ct_suite:ct_config()) -> term().
stalled_forged_frame_is_unresponsive(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Self = self(),
    Waiter = spawn_link(fun() ->
                                Ref = py_event_loop:create_task({pyport_loop, 1}, ?X, nap,
                                                                [30, never], #{}),
                                Self ! {waited, self(), py_event_loop:await(Ref, infinity)}
                        end),
    ok = pyport_ct:wait_until(
           fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end, ?PROMPTLY),
    %% The port keeps writing (output lines) into the swallowed stream.
    ok = py_event_loop:spawn_task({pyport_loop, 1}, ?X, chatter, [30, 0.02], #{}),
    ?assertEqual({error, timeout}, run(forge_raw, [<<(100 bsl 20):32, 131, 104>>], 500)),
    Unresponsive = {error, {python_exit, {killed, unresponsive}}},
    receive
        {waited, Waiter, Got} -> ?assertEqual(Unresponsive, Got)
    after ?PROMPTLY ->
        ct:fail(waiter_hung)
    end,
    _ = pyport_ct:await_restart(1, OsPid),
    ?assertEqual({ok, 1}, run(nap, [0, 1], ?PROMPTLY)).

%% One arbitrary payload, framed or (one in five) written as it is, while
%% another caller waits on the same loop with no timeout of its own.
-spec forge_one(pos_integer()) -> accepted | killed.
forge_one(I) ->
    Payload = pyport_frame_gen:frame(I),
    Wire = case I rem 5 of
               0 -> Payload;
               _ -> <<(byte_size(Payload)):32, Payload/binary>>
           end,
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Self = self(),
    Waiter = spawn_link(fun() ->
                                Ref = py_event_loop:create_task({pyport_loop, 1}, ?X, nap,
                                                                [0.05, waited], #{}),
                                Self ! {waited, self(), py_event_loop:await(Ref, infinity)}
                        end),
    Forged = run(forge_raw, [Wire], ?PROMPTLY),
    Waited = receive {waited, Waiter, R} -> R after ?PROMPTLY -> ct:fail({hung, I, Wire}) end,
    Killed = {error, {python_exit, {killed, bad_output}}},
    case {Forged, Waited} of
        {{ok, N}, {ok, <<"waited">>}} when is_integer(N) ->
            accepted;
        {Killed, W} when W =:= Killed; W =:= {ok, <<"waited">>} ->
            _ = pyport_ct:await_restart(1, OsPid),
            %% Keep the kills under the loop supervisor's intensity
            %% (10 restarts in 5 s).
            timer:sleep(600),
            killed;
        Other ->
            ct:fail({unexpected, I, Wire, Other})
    end.

-spec count([atom()]) -> #{atom() => pos_integer()}.
count(Outcomes) ->
    lists:foldl(fun(O, M) -> maps:update_with(O, fun(N) -> N + 1 end, 1, M) end, #{}, Outcomes).

%% Helpers of the BEAM decode boundary section.

-spec frame(binary()) -> binary().
frame(Payload) ->
    <<(byte_size(Payload)):32, Payload/binary>>.

%% How many captured log events so far mention Needle.
-spec count_logs(binary()) -> non_neg_integer().
count_logs(Needle) ->
    timer:sleep(200),
    length([E || {pyport_ct_log, E} <- pyport_ct:mailbox(), pyport_ct:log_mentions(E, Needle)]).

%% Keeps the largest growth of erlang:memory(total) over Base until asked.
-spec sample_memory(non_neg_integer()) -> ok.
sample_memory(Base) ->
    sample_memory(Base, 0).

-spec sample_memory(non_neg_integer(), integer()) -> ok.
sample_memory(Base, Peak0) ->
    Peak = max(Peak0, erlang:memory(total) - Base),
    receive
        {peak, From} -> From ! {peak, Peak}, ok
    after 5 ->
        sample_memory(Base, Peak)
    end.

-spec file_info(file:filename()) -> {ok, map()} | {error, term()}.
file_info(Path) ->
    case file:read_file_info(Path) of
        {ok, Info} ->
            {ok, #{mode => element(8, Info), type => element(3, Info)}};
        Error ->
            Error
    end.

-spec restore_env(string(), string() | false) -> true.
restore_env(Name, false) -> os:unsetenv(Name);
restore_env(Name, Value) -> os:putenv(Name, Value).
