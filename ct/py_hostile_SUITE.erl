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
%% max_atoms and max_packet of the decode-boundary cases.
-define(ATOM_BUDGET, 1000).
-define(SMALL_PACKET, 65536).

-spec all() -> [atom()].
all() ->
    [%% == BEAM decode boundary ==
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
     send_to_caller_allowed_when_restricted].

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
case_env(Case) when Case =:= returned_atoms_beyond_budget_are_task_error;
                    Case =:= forged_atom_frames_cannot_exhaust_atoms ->
    [{max_atoms, ?ATOM_BUDGET}];
case_env(bad_output_frames_kill_port) -> [{max_packet, ?SMALL_PACKET}];
case_env(Case) when Case =:= send_to_init_is_refused_when_restricted;
                    Case =:= send_to_caller_allowed_when_restricted ->
    [{send_allow, #{names => [pyport_ct_allowed], pids => callers}}];
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
bad_output_frames_kill_port() -> [{doc, "A compressed frame, a frame announcing more than max_packet, and a malformed term each kill the port as bad_output; the caller is answered, the loop restarts each time."}].
-spec bad_output_frames_kill_port(ct_suite:ct_config()) -> term().
bad_output_frames_kill_port(_) ->
    Compressed = term_to_binary(binary:copy(<<0>>, 10000), [compressed]),
    Frames = [frame(Compressed),
              <<(?SMALL_PACKET + 1):32, 0, 0, 0>>,
              frame(<<131, 104, 3, 255, 255>>)],
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
