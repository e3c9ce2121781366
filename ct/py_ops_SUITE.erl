%% Operations (docs/operations.md): named pools under a user's supervisor,
%% restart_loop, code_change, configuration warnings, the log level
%% following the OTP logger's, the interpreter check, a venv pyport makes
%% and fills, telemetry events and task timings.
-module(py_ops_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(OPS, pyport_ops).

-spec all() -> [atom()].
all() ->
    [named_pool_under_own_supervisor, named_pools_have_their_own_config,
     named_pool_handles, child_spec_refuses_bad_options, config_warnings,
     restart_loop_default_pool, restart_loop_named_pool, code_change_keeps_serving,
     log_level_follows_logger, output_and_records_in_order, interpreter_mismatch_refused, interpreter_other_allowed,
     missing_libpython_reported, venv_with_requirements, venv_install_failure, telemetry_loop_start, telemetry_task_events,
     telemetry_failing_handler_detached, task_timings_in_stats, env_check].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(config_warnings, Config) ->
    Config;
init_per_testcase(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    ok = logger:set_primary_config(level, notice),
    _ = [py_telemetry:detach(Id) || {Id, _} <- py_telemetry:list()],
    ok = pyport_ct:release_logs(),
    ok = application:unset_env(pyport, executable),
    pyport_ct:stop().

%% -- named pools -----------------------------------------------------------------

-spec named_pool_under_own_supervisor() -> [{doc, string()}].
named_pool_under_own_supervisor() -> [{doc, "py_pool:child_spec/1 runs a named pool under the user's own supervisor: tasks run there, in other OS processes than the default pool's, and stopping the user's supervisor ends its ports."}].
-spec named_pool_under_own_supervisor(ct_suite:ct_config()) -> term().
named_pool_under_own_supervisor(_) ->
    Spec = py_event_loop_pool:child_spec(#{name => ops_a, size => 2,
                                           python_path => [pyport_ct:helpers_dir()]}),
    {ok, Sup} = supervisor:start_link(?MODULE, [Spec]),
    unlink(Sup),
    {ok, Pid} = py_pool:run(ops_a, os, getpid, []),
    {ok, DefaultPid} = py_event_loop_pool:run(os, getpid, []),
    ?assertNotEqual(DefaultPid, Pid),
    ?assertEqual({ok, 5.0}, py_pool:run(ops_a, math, sqrt, [25.0])),
    Ref = py_pool:create_task(ops_a, ?OPS, sleep, [0.01]),
    ?assertEqual({ok, <<"slept">>}, py_event_loop_pool:await(Ref)),
    ?assertEqual(ok, py_pool:spawn_task(ops_a, ?OPS, sleep, [0.01])),
    #{num_loops := 2, loops := Loops} = py_pool:get_stats(ops_a),
    OsPids = [P || #{os_pid := P} <- Loops],
    ?assert(lists:member(Pid, OsPids)),
    {ok, {pyport_loop, {ops_a, I}}} = py_pool:get_loop(ops_a),
    ?assert(I =:= 1 orelse I =:= 2),
    ?assertEqual([{pyport_loop, {ops_a, 1}}, {pyport_loop, {ops_a, 2}}], py_pool:loops(ops_a)),
    ok = stop_sup(Sup),
    ok = pyport_ct_os:await_gone(OsPids, 10000),
    ?assertEqual({error, loop_unavailable}, py_pool:run(ops_a, math, sqrt, [25.0])),
    ?assertEqual({error, not_started}, py_pool:get_stats(ops_a)),
    %% The default pool was not touched.
    ?assertEqual({ok, DefaultPid}, py_event_loop_pool:run(os, getpid, [])).

-spec named_pools_have_their_own_config() -> [{doc, string()}].
named_pools_have_their_own_config() -> [{doc, "Two named pools on one node, each with its own settings (env, per-loop entries), and the default pool unaffected."}].
-spec named_pools_have_their_own_config(ct_suite:ct_config()) -> term().
named_pools_have_their_own_config(_) ->
    {ok, A} = py_pool:start_link(#{name => ops_a, size => 1,
                                   env => [{"PYPORT_OPS", "a"}],
                                   python_path => [pyport_ct:helpers_dir()]}),
    {ok, B} = py_pool:start_link(#{name => ops_b, size => 2,
                                   env => [{"PYPORT_OPS", "b"}],
                                   loops => #{2 => #{env => [{"PYPORT_OPS", "b2"}]}},
                                   python_path => [pyport_ct:helpers_dir()]}),
    ?assertEqual({ok, <<"a">>}, py_pool:run(ops_a, ?OPS, getenv, [<<"PYPORT_OPS">>])),
    ?assertEqual({ok, <<"b">>}, py_event_loop:run({pyport_loop, {ops_b, 1}}, ?OPS, getenv,
                                                  [<<"PYPORT_OPS">>], #{})),
    ?assertEqual({ok, <<"b2">>}, py_event_loop:run({pyport_loop, {ops_b, 2}}, ?OPS, getenv,
                                                   [<<"PYPORT_OPS">>], #{})),
    ?assertEqual({ok, none}, py_event_loop_pool:run(?OPS, getenv, [<<"PYPORT_OPS">>])),
    ok = stop_sup(A),
    ok = stop_sup(B).

-spec named_pool_handles() -> [{doc, string()}].
named_pool_handles() -> [{doc, "Object handles work on a named pool's loop: a handle result names that loop and calls on it route there."}].
-spec named_pool_handles(ct_suite:ct_config()) -> term().
named_pool_handles(_) ->
    {ok, A} = py_pool:start_link(#{name => ops_a}),
    {ok, Obj} = py_event_loop:run({pyport_loop, {ops_a, 1}}, collections, 'OrderedDict', [],
                                  #{result => handle}),
    ?assertEqual({ok, none}, py_obj:call(Obj, '__setitem__', [<<"k">>, 1])),
    ?assertEqual({ok, 1}, py_obj:call(Obj, '__len__', [])),
    ok = stop_sup(A).

-spec child_spec_refuses_bad_options() -> [{doc, string()}].
child_spec_refuses_bad_options() -> [{doc, "A named pool refuses a misspelt key, a loops entry for a loop it does not have, a bad value and a bad name, naming each."}].
-spec child_spec_refuses_bad_options(ct_suite:ct_config()) -> term().
child_spec_refuses_bad_options(_) ->
    ?assertError({badarg, {bad_config, {unknown_key, pythonpath}}},
                 py_pool:child_spec(#{name => ops_a, pythonpath => ["/tmp"]})),
    ?assertError({badarg, {bad_config, {{loops, 5}, {no_such_loop, 1}}}},
                 py_pool:child_spec(#{name => ops_a, loops => #{5 => #{}}})),
    ?assertError({badarg, {bad_config, {max_pending, -1}}},
                 py_pool:child_spec(#{name => ops_a, max_pending => -1})),
    ?assertError({badarg, {bad_config, {pool, #{name := default}}}},
                 py_pool:child_spec(#{name => default})),
    ?assertEqual({error, {bad_config, {size, 0}}}, py_pool:start_link(#{name => ops_a, size => 0})).

%% -- configuration -----------------------------------------------------------------

-spec config_warnings() -> [{doc, string()}].
config_warnings() -> [{doc, "At start, misspelt keys (pythonpath, pool_size) and a loops entry beyond the pool's size are logged as warnings; the application still starts."}].
-spec config_warnings(ct_suite:ct_config()) -> term().
config_warnings(_) ->
    ok = pyport_ct:capture_logs(),
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {pythonpath, ["/tmp"]}, {pool_size, 3},
                          {loops, #{5 => #{max_pending => 10}}}]),
    %% Logged in this order (await_log drops what does not match).
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"`loops` has entries for loop(s) [5]">>) end, 5000),
    Unknown = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"unknown configuration">>) end, 5000),
    ?assert(pyport_ct:log_mentions(Unknown, <<"did you mean ">>)),
    ?assert(pyport_ct:log_mentions(Unknown, <<"python_path for pythonpath">>)),
    ?assert(pyport_ct:log_mentions(Unknown, <<"event_loop_pool_size for pool_size">>)),
    ?assertEqual({ok, 4.0}, py_event_loop_pool:run(math, sqrt, [16.0])).

%% -- restart_loop and code_change -------------------------------------------------

-spec restart_loop_default_pool() -> [{doc, string()}].
restart_loop_default_pool() -> [{doc, "restart_loop/1 replaces the loop's OS process and returns once the fresh one serves; a task running there is cancelled, other loops keep their process."}].
-spec restart_loop_default_pool(ct_suite:ct_config()) -> term().
restart_loop_default_pool(_) ->
    #{os_pid := Old1} = pyport_ct:loop_stats(1),
    #{os_pid := Old2} = pyport_ct:loop_stats(2),
    Self = self(),
    Caller = spawn_link(fun() ->
                                Self ! {self(), py_event_loop:run({pyport_loop, 1}, ?OPS, sleep,
                                                                  [30], #{timeout => 30000})}
                        end),
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 1 end, 5000),
    ?assertEqual(ok, py_event_loop_pool:restart_loop({pyport_loop, 1})),
    receive {Caller, R} -> ?assertEqual({error, cancelled}, R)
    after 10000 -> ct:fail(caller_not_answered)
    end,
    #{os_pid := New1, restarts := 1} = pyport_ct:loop_stats(1),
    ?assertNotEqual(Old1, New1),
    ?assertMatch(#{os_pid := Old2, restarts := 0}, pyport_ct:loop_stats(2)),
    ?assertEqual({ok, New1}, py_event_loop:run({pyport_loop, 1}, os, getpid, [], #{})),
    ok = pyport_ct_os:await_gone([Old1], 5000),
    ?assertError({badarg, {loop, nope}}, py_event_loop_pool:restart_loop(nope)).

-spec restart_loop_named_pool() -> [{doc, string()}].
restart_loop_named_pool() -> [{doc, "restart_loop/1 on a named pool's loop restarts that loop only."}].
-spec restart_loop_named_pool(ct_suite:ct_config()) -> term().
restart_loop_named_pool(_) ->
    {ok, A} = py_pool:start_link(#{name => ops_a, size => 2}),
    #{loops := [#{os_pid := Old1}, #{os_pid := Old2}]} = py_pool:get_stats(ops_a),
    #{os_pid := Default1} = pyport_ct:loop_stats(1),
    ?assertEqual(ok, py_pool:restart_loop({pyport_loop, {ops_a, 2}})),
    #{loops := [#{os_pid := Old1}, #{os_pid := New2, restarts := 1}]} = py_pool:get_stats(ops_a),
    ?assertNotEqual(Old2, New2),
    ?assertMatch(#{os_pid := Default1}, pyport_ct:loop_stats(1)),
    ?assertEqual({ok, New2}, py_event_loop:run({pyport_loop, {ops_a, 2}}, os, getpid, [], #{})),
    ?assertEqual({error, loop_unavailable}, py_pool:restart_loop({pyport_loop, {ops_zz, 1}})),
    ok = stop_sup(A).

-spec code_change_keeps_serving() -> [{doc, string()}].
code_change_keeps_serving() -> [{doc, "sys:change_code/4 on the pool and a worker (as a release upgrade does) keeps their state: the same ports serve afterwards."}].
-spec code_change_keeps_serving(ct_suite:ct_config()) -> term().
code_change_keeps_serving(_) ->
    #{worker := Worker, os_pid := OsPid} = pyport_ct:loop_stats(1),
    Pool = whereis(py_event_loop_pool),
    lists:foreach(fun({Pid, Mod}) ->
                          ok = sys:suspend(Pid),
                          ok = sys:change_code(Pid, Mod, "0.0.0", []),
                          ok = sys:resume(Pid)
                  end, [{Pool, py_event_loop_pool}, {Worker, pyport_worker}]),
    ?assertEqual({ok, OsPid}, py_event_loop:run({pyport_loop, 1}, os, getpid, [], #{})),
    ?assertMatch(#{worker := Worker, os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

%% -- the log level ------------------------------------------------------------------

-spec log_level_follows_logger() -> [{doc, string()}].
log_level_follows_logger() -> [{doc, "With python_log_level unset, Python's info records reach the OTP logger only once logger:set_primary_config(level, info) is made at run time, and stop again when it goes back."}].
-spec log_level_follows_logger(ct_suite:ct_config()) -> term().
log_level_follows_logger(_) ->
    ok = logger:set_primary_config(level, notice),
    ok = pyport_ct:capture_logs(),
    %% The level the pool saw at start may be the one before: wait until
    %% Python's level is notice (an info record is dropped in Python).
    timer:sleep(500),
    {ok, _} = py_event_loop:run({pyport_loop, 1}, ?OPS, log_info, [<<"hidden">>], #{}),
    ok = logger:set_primary_config(level, info),
    ok = pyport_ct:wait_until(
           fun() ->
                   {ok, _} = py_event_loop:run({pyport_loop, 1}, ?OPS, log_info, [<<"shown">>], #{}),
                   receive
                       {pyport_ct_log, #{meta := #{python_logger := <<"pyport_ops">>}} = E} ->
                           pyport_ct:log_mentions(E, <<"shown">>)
                   after 100 -> false
                   end
           end, 5000),
    ok = logger:set_primary_config(level, notice),
    timer:sleep(600),
    ok = pyport_ct:flush_logs(),
    {ok, _} = py_event_loop:run({pyport_loop, 1}, ?OPS, log_info, [<<"hidden again">>], #{}),
    %% A record the port sent would be here by now: the loop answered after it.
    {ok, _} = py_event_loop:run({pyport_loop, 1}, math, sqrt, [1.0], #{}),
    ?assertEqual([], [E || {pyport_ct_log, #{meta := #{python_logger := <<"pyport_ops">>}} = E}
                               <- pyport_ct:mailbox()]).

-spec output_and_records_in_order() -> [{doc, string()}].
output_and_records_in_order() -> [{doc, "A task's print() lines and its log records reach the OTP logger in the order the task made them."}].
-spec output_and_records_in_order(ct_suite:ct_config()) -> term().
output_and_records_in_order(_) ->
    %% stdout lines are logged at info.
    ok = logger:set_primary_config(level, info),
    ok = pyport_ct:capture_logs(),
    {ok, 50} = py_event_loop:run({pyport_loop, 1}, ?OPS, print_then_log, [50], #{}),
    Texts = collect_texts(100),
    ?assertEqual(lists:append([[iolist_to_binary(io_lib:format("line ~b", [I])),
                                iolist_to_binary(io_lib:format("record ~b", [I]))]
                               || I <- lists:seq(0, 49)]), Texts).

-spec collect_texts(non_neg_integer()) -> [binary()].
collect_texts(0) ->
    [];
collect_texts(N) ->
    receive
        {pyport_ct_log, #{meta := #{python_logger := L}, msg := {"~ts", [Text]}}}
          when L =:= <<"stdout">>; L =:= <<"pyport_ops">> ->
            [iolist_to_binary(Text) | collect_texts(N - 1)];
        {pyport_ct_log, _} ->
            collect_texts(N)
    after 5000 ->
        ct:fail({missing, N})
    end.

%% -- the interpreter check ----------------------------------------------------------

-spec interpreter_mismatch_refused() -> [{doc, string()}].
interpreter_mismatch_refused() -> [{doc, "A libpython other than the one built against, found first through LD_LIBRARY_PATH, makes the start fail with {python_mismatch, #{loaded, built}}."}].
-spec interpreter_mismatch_refused(ct_suite:ct_config()) -> term().
interpreter_mismatch_refused(Config) ->
    Dir = libpython_copy(Config),
    process_flag(trap_exit, true),
    {error, Reason} = py_pool:start_link(#{name => ops_a, env => [{"LD_LIBRARY_PATH", Dir}]}),
    ?assertMatch({python_mismatch, #{loaded := _, built := _}}, start_reason(Reason)),
    {python_mismatch, #{loaded := Loaded}} = start_reason(Reason),
    ?assertEqual(Dir, filename:dirname(binary_to_list(Loaded))).

-spec interpreter_other_allowed() -> [{doc, string()}].
interpreter_other_allowed() -> [{doc, "With allow_other_python => true the other libpython is used, and get_stats/0 reports the library actually loaded."}].
-spec interpreter_other_allowed(ct_suite:ct_config()) -> term().
interpreter_other_allowed(Config) ->
    Dir = libpython_copy(Config),
    {ok, A} = py_pool:start_link(#{name => ops_a, allow_other_python => true,
                                   env => [{"LD_LIBRARY_PATH", Dir}]}),
    #{loops := [#{python_lib := Lib}]} = py_pool:get_stats(ops_a),
    ?assertEqual(Dir, filename:dirname(binary_to_list(Lib))),
    #{python_lib := DefaultLib} = pyport_ct:loop_stats(1),
    ?assertNotEqual(Dir, filename:dirname(binary_to_list(DefaultLib))),
    ok = stop_sup(A).

-spec missing_libpython_reported() -> [{doc, string()}].
missing_libpython_reported() -> [{doc, "An executable whose libpython cannot be found fails to start with {exit_status, 127, Text}, Text being the dynamic loader's message, not <<>>."}].
-spec missing_libpython_reported(ct_suite:ct_config()) -> term().
missing_libpython_reported(Config) ->
    Exe = filename:join(?config(priv_dir, Config), "pyport-nolib"),
    {ok, Bin} = file:read_file(pyport_config:executable()),
    Patched = binary:replace(Bin, <<"libpython3.">>, <<"libpythonX.">>, [global]),
    ?assertNotEqual(Bin, Patched),
    ok = file:write_file(Exe, Patched),
    ok = file:change_mode(Exe, 8#755),
    ok = application:set_env(pyport, executable, Exe),
    process_flag(trap_exit, true),
    {error, Reason} = py_pool:start_link(#{name => ops_a}),
    {exit_status, 127, Text} = start_reason(Reason),
    ct:log("loader: ~ts", [Text]),
    ?assertNotEqual(nomatch, binary:match(Text, <<"libpythonX.">>)).

%% -- venv -------------------------------------------------------------------------

-spec venv_with_requirements() -> [{doc, string()}].
venv_with_requirements() -> [{doc, "venv => #{path, requirements, pip_args} creates the venv with pyport's interpreter and installs a wheel built here (offline) at first start; the package imports; a second start installs nothing."}].
-spec venv_with_requirements(ct_suite:ct_config()) -> term().
venv_with_requirements(Config) ->
    Priv = ?config(priv_dir, Config),
    Wheels = filename:join(Priv, "wheels"),
    ok = filelib:ensure_dir(filename:join(Wheels, "x")),
    _ = build_wheel(Wheels),
    Venv = filename:join(Priv, "venv-req"),
    Spec = #{path => Venv, requirements => ["opspkg"],
             pip_args => ["--no-index", "--find-links", Wheels]},
    %% Progress is logged at info.
    ok = logger:set_primary_config(level, info),
    ok = pyport_ct:capture_logs(),
    {ok, A} = py_pool:start_link(#{name => ops_a, venv => Spec}),
    ?assertEqual({ok, <<"hi from opspkg">>}, py_pool:run(ops_a, opspkg, hello, [])),
    ?assert(filelib:is_regular(filename:join(Venv, "pyvenv.cfg"))),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"creating the virtualenv">>) end, 1000),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"installing requirements">>) end, 1000),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"Successfully installed opspkg">>) end, 1000),
    ok = stop_sup(A),
    ok = pyport_ct:flush_logs(),
    {ok, A2} = py_pool:start_link(#{name => ops_a, venv => Spec}),
    ?assertEqual({ok, <<"hi from opspkg">>}, py_pool:run(ops_a, opspkg, hello, [])),
    ?assertEqual([], [E || {pyport_ct_log, E} <- pyport_ct:mailbox(),
                           pyport_ct:log_mentions(E, <<"installing requirements">>)]),
    ok = stop_sup(A2),
    %% Not installed elsewhere: the default pool does not have it.
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>, _, _}},
                 py_event_loop_pool:run(opspkg, hello, [])).

-spec venv_install_failure() -> [{doc, string()}].
venv_install_failure() -> [{doc, "A requirement pip cannot install fails the loop's start with {venv_failed, {exit_status, _, PipLines}}, and no stamp is written."}].
-spec venv_install_failure(ct_suite:ct_config()) -> term().
venv_install_failure(Config) ->
    Priv = ?config(priv_dir, Config),
    Venv = filename:join(Priv, "venv-bad"),
    process_flag(trap_exit, true),
    {error, Reason} = py_pool:start_link(#{name => ops_a,
                                           venv => #{path => Venv,
                                                     requirements => ["no-such-package-ops"],
                                                     pip_args => ["--no-index"]}}),
    {venv_failed, {exit_status, Status, Lines}} = start_reason(Reason),
    ?assert(Status =/= 0),
    ?assertNotEqual(nomatch, binary:match(Lines, <<"no-such-package-ops">>)),
    ?assertNot(filelib:is_regular(filename:join(Venv, ".pyport-requirements"))).

-spec telemetry_loop_start() -> [{doc, string()}].
telemetry_loop_start() -> [{doc, "[pyport, loop, start] is emitted when a loop's port is ready (here after restart_loop), with the loaded library."}].
-spec telemetry_loop_start(ct_suite:ct_config()) -> term().
telemetry_loop_start(_) ->
    Self = self(),
    ok = py_telemetry:attach(ops_start, [[pyport, loop, start]],
                             fun(E, M, Meta, Cfg) -> Cfg ! {event, E, M, Meta} end, Self),
    ok = py_event_loop_pool:restart_loop({pyport_loop, 2}),
    receive
        {event, [pyport, loop, start], #{}, #{loop := 2, python_lib := Lib, same := true}} ->
            ?assertNotEqual(nomatch, binary:match(Lib, <<"libpython">>))
    after 5000 -> ct:fail(no_event)
    end.

%% -- telemetry and timings --------------------------------------------------------

-spec telemetry_task_events() -> [{doc, string()}].
telemetry_task_events() -> [{doc, "A handler attached to [pyport, task, stop] gets each awaited task's duration and queue time with its loop and result kind; after detach it gets nothing."}].
-spec telemetry_task_events(ct_suite:ct_config()) -> term().
telemetry_task_events(_) ->
    Self = self(),
    ok = py_telemetry:attach(ops_test, [[pyport, task, stop]],
                             fun(E, M, Meta, Cfg) -> Cfg ! {event, E, M, Meta} end, Self),
    ?assertEqual({error, already_exists}, py_telemetry:attach(ops_test, [[pyport, task, stop]],
                                                              fun(_, _, _, _) -> ok end, x)),
    {error, _} = py_event_loop:run({pyport_loop, 2}, math, sqrt, [-1.0], #{}),
    receive
        {event, [pyport, task, stop], #{duration_us := D, queue_us := Q}, #{loop := 2, result := error}} ->
            ?assert(is_integer(D) andalso D >= Q andalso Q >= 0)
    after 1000 -> ct:fail(no_event)
    end,
    ok = py_telemetry:detach(ops_test),
    {ok, _} = py_event_loop_pool:run(math, sqrt, [1.0]),
    receive {event, _, _, _} -> ct:fail(event_after_detach) after 100 -> ok end,
    ?assertEqual({error, not_found}, py_telemetry:detach(ops_test)).

-spec telemetry_failing_handler_detached() -> [{doc, string()}].
telemetry_failing_handler_detached() -> [{doc, "A handler that raises is detached and logged; the task's caller still gets its result."}].
-spec telemetry_failing_handler_detached(ct_suite:ct_config()) -> term().
telemetry_failing_handler_detached(_) ->
    ok = pyport_ct:capture_logs(),
    ok = py_telemetry:attach(ops_bad, [[pyport, task, stop]], fun(_, _, _, _) -> error(boom) end, x),
    ?assertEqual({ok, 2.0}, py_event_loop_pool:run(math, sqrt, [4.0])),
    ?assertEqual([], py_telemetry:list()),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"ops_bad">>) end, 1000).

-spec task_timings_in_stats() -> [{doc, string()}].
task_timings_in_stats() -> [{doc, "get_stats/0 counts each loop's awaited tasks with latency and queue time, latency at least the task's own sleep."}].
-spec task_timings_in_stats(ct_suite:ct_config()) -> term().
task_timings_in_stats(_) ->
    [{ok, <<"slept">>} = py_event_loop:run({pyport_loop, 1}, ?OPS, sleep, [0.02], #{})
     || _ <- lists:seq(1, 5)],
    #{tasks := #{count := 5, latency_us_avg := Avg, latency_us_max := Max,
                 queue_us_avg := QAvg}} = pyport_ct:loop_stats(1),
    ?assert(Avg >= 20000),
    ?assert(Max >= Avg),
    ?assert(QAvg < Avg),
    ?assertMatch(#{tasks := #{count := 0}}, pyport_ct:loop_stats(2)).

-spec env_check() -> [{doc, string()}].
env_check() -> [{doc, "pyport_envcheck:check/0 says ok for a good setup and names a preload module that does not import."}].
-spec env_check(ct_suite:ct_config()) -> term().
env_check(_) ->
    ?assertEqual(ok, pyport_envcheck:check()),
    ok = application:set_env(pyport, preload, [no_such_module_ops]),
    ?assertEqual(error, pyport_envcheck:check()),
    ok = application:unset_env(pyport, preload).

%% -- helpers ----------------------------------------------------------------------

%% supervisor callback for named_pool_under_own_supervisor.
-spec init([supervisor:child_spec()]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(Specs) ->
    {ok, {#{strategy => one_for_one}, Specs}}.

-spec stop_sup(pid()) -> ok.
stop_sup(Sup) ->
    unlink(Sup),
    MRef = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', MRef, _, _, _} -> ok after 15000 -> ct:fail(sup_not_stopped) end.

%% The port's failure inside the supervisors' start errors.
-spec start_reason(term()) -> term().
start_reason({shutdown, {failed_to_start_child, _, R}}) -> start_reason(R);
start_reason({port_start_failed, R}) -> R;
start_reason(R) -> R.

-spec libpython_copy(ct_suite:ct_config()) -> string().
libpython_copy(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "otherlib"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    #{python_lib := Lib} = pyport_ct:loop_stats(1),
    Name = filename:basename(binary_to_list(Lib)),
    {ok, _} = file:copy(Lib, filename:join(Dir, Name)),
    Dir.

-spec build_wheel(file:filename()) -> file:filename().
build_wheel(Dir) ->
    Info = "opspkg-0.1.dist-info/",
    Files = [{"opspkg/__init__.py", <<"def hello():\n    return 'hi from opspkg'\n">>},
             {Info ++ "METADATA", <<"Metadata-Version: 2.1\nName: opspkg\nVersion: 0.1\n">>},
             {Info ++ "WHEEL", <<"Wheel-Version: 1.0\nGenerator: pyport-ct\n"
                                 "Root-Is-Purelib: true\nTag: py3-none-any\n">>}],
    Record = iolist_to_binary([[Name, ",,\n"] || {Name, _} <- Files] ++ [Info, "RECORD,,\n"]),
    Wheel = filename:join(Dir, "opspkg-0.1-py3-none-any.whl"),
    {ok, _} = zip:create(Wheel, Files ++ [{Info ++ "RECORD", Record}]),
    Wheel.
