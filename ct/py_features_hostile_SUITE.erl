%% The features (handles, actors, the cluster, the venv installer,
%% restart_loop, telemetry) used as a hostile or careless user would
%% (issue 23): nothing done through them hurts the node, a neighbour or
%% another owner, and each operation keeps its documented reply. Fixtures:
%% ct/python/pyport_features_hostile.py.
%%
%% Every case stops what it starts: the application in end_per_testcase,
%% peers and OS processes in the case itself.
-module(py_features_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(F, pyport_features_hostile).
-define(H, pyport_ct_helpers).

-spec all() -> [atom()].
all() ->
    [cluster_call_answered_by_deadline_when_member_stopped,
     transfer_to_self_is_a_no_op,
     failed_result_releases_only_its_own_handles,
     forged_actor_reply_reaches_no_plain_caller,
     venv_install_timeout_kills_process_group,
     concurrent_restart_loop_all_answered_ok,
     restart_loop_under_load_gives_documented_replies,
     actor_backlog_is_bounded,
     one_owner_cannot_take_every_handle,
     handles_are_used_by_owner_only,
     raising_telemetry_handler_detached_and_logged_once].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(cluster_call_answered_by_deadline_when_member_stopped, Config) ->
    ok = distribution(),
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    Config;
init_per_testcase(venv_install_timeout_kills_process_group, Config) ->
    Config;
init_per_testcase(forged_actor_reply_reaches_no_plain_caller, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {send_allow, #{pids => none}}]),
    Config;
init_per_testcase(one_owner_cannot_take_every_handle, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {max_handles, 20},
                          {max_handles_per_owner, 5}]),
    Config;
init_per_testcase(actor_backlog_is_bounded, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {actor_max_backlog, 1000}]),
    Config;
init_per_testcase(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    _ = pyport_ct:release_logs(),
    pyport_ct:stop().

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    case net_kernel:get_state() of
        #{started := dynamic} -> ok = net_kernel:stop();
        _ -> ok
    end.

%% -- row 5: the cluster ------------------------------------------------------------

-spec cluster_call_answered_by_deadline_when_member_stopped() -> [{doc, string()}].
cluster_call_answered_by_deadline_when_member_stopped() -> [{doc, "A py_cluster:run with a 1 s timeout to a member that is SIGSTOPped (its distribution buffer full) is answered {error, timeout} by its own deadline, not at nodedown; local tasks are unaffected meanwhile."}].
-spec cluster_call_answered_by_deadline_when_member_stopped(ct_suite:ct_config()) -> term().
cluster_call_answered_by_deadline_when_member_stopped(_) ->
    Ebin = filename:dirname(code:which(py_cluster)),
    Ct = filename:dirname(code:which(pyport_ct)),
    {ok, Peer, B} = peer:start(#{name => peer:random_name(), args => ["-pa", Ebin, "-pa", Ct]}),
    ok = erpc:call(B, pyport_ct, start, [[{event_loop_pool_size, 1}]]),
    #{loops := [#{os_pid := PortPid}]} = erpc:call(B, py_event_loop_pool, get_stats, []),
    BeamPid = list_to_integer(erpc:call(B, os, getpid, [])),
    ok = pyport_ct:wait_until(fun() -> lists:member(B, py_cluster:nodes()) end, 10000),
    {ok, 4.0} = py_cluster:run(math, sqrt, [16.0], #{node => B}),
    _ = os:cmd("kill -STOP " ++ integer_to_list(BeamPid)),
    %% Something else on this node fills the connection to B: its sender
    %% is suspended, as any process sending to B would be.
    Flooder = spawn(fun() -> flood(B) end),
    try
        ok = pyport_ct:wait_until(
               fun() -> process_info(Flooder, status) =:= {status, suspended} end, 30000),
        Self = self(),
        T0 = erlang:monotonic_time(millisecond),
        Callers = [spawn(fun() ->
                                 R = py_cluster:run(?H, sleep_then, [0.01, done],
                                                    #{node => B, timeout => 1000}),
                                 Self ! {self(), R, erlang:monotonic_time(millisecond) - T0}
                         end) || _ <- lists:seq(1, 5)],
        Results = [receive {C, R, Ms} -> {R, Ms}
                   after 20000 -> ct:fail({caller_not_answered_by_deadline, C})
                   end || C <- Callers],
        [?assertEqual({error, timeout}, R) || {R, _} <- Results],
        %% Generous: the deadline is 1 s, nodedown would be a minute.
        [?assert(Ms < 10000) || {_, Ms} <- Results],
        %% The bystander: this node's own loop serves meanwhile.
        ?assertEqual({ok, 3.0}, py_cluster:run(math, sqrt, [9.0], #{node => node()})),
        ?assertEqual([], pyport_ct:mailbox())
    after
        exit(Flooder, kill),
        _ = os:cmd("kill -CONT " ++ integer_to_list(BeamPid)),
        catch peer:stop(Peer),
        ok = pyport_ct_os:await_gone([BeamPid, PortPid], 30000)
    end.

-spec flood(node()) -> ok.
flood(Node) ->
    Bin = binary:copy(<<0>>, 1 bsl 20),
    lists:foreach(fun(_) -> {py_features_hostile_nobody, Node} ! Bin end,
                  lists:seq(1, 4096)).

%% -- rows 8 and 9: handles ---------------------------------------------------------

-spec transfer_to_self_is_a_no_op() -> [{doc, string()}].
transfer_to_self_is_a_no_op() -> [{doc, "py_obj:transfer(H, self()) changes nothing: when the owner exits, the object is released in Erlang (handle count 0) and freed in Python."}].
-spec transfer_to_self_is_a_no_op(ct_suite:ct_config()) -> term().
transfer_to_self_is_a_no_op(_) ->
    Self = self(),
    {Owner, MRef} = spawn_monitor(
                      fun() ->
                              {ok, H} = py_event_loop:run({pyport_loop, 1}, ?F, watched,
                                                          [Self, <<"mine">>], #{result => handle}),
                              ok = py_obj:transfer(H, self()),
                              {ok, 1} = py_obj:call(H, add, [1]),
                              Self ! {self(), handles(1)}
                      end),
    receive {Owner, Count} -> ?assertEqual(1, Count) end,
    receive {'DOWN', MRef, process, Owner, normal} -> ok end,
    receive {finalized, <<"mine">>} -> ok after 5000 -> ct:fail(object_not_freed) end,
    ok = pyport_ct:wait_until(fun() -> handles(1) =:= 0 end, 5000),
    ok.

-spec failed_result_releases_only_its_own_handles() -> [{doc, string()}].
failed_result_releases_only_its_own_handles() -> [{doc, "A result that fails conversion while holding another owner's shared handle releases only the objects made for it: the owner's handle keeps working and is counted once."}].
-spec failed_result_releases_only_its_own_handles(ct_suite:ct_config()) -> term().
failed_result_releases_only_its_own_handles(_) ->
    Self = self(),
    Loop = {pyport_loop, 1},
    {ok, H} = py_event_loop:run(Loop, ?F, shared, [Self], #{}),
    {ok, 11} = py_obj:call(H, add, [1]),
    ?assertEqual(1, handles(1)),
    %% Another process's failing results, in both conversion modes.
    Other = spawn_link(fun() ->
                               R1 = py_event_loop:run(Loop, ?F, shared_then_bad, [], #{}),
                               R2 = py_event_loop:run(Loop, ?F, shared_then_bad, [],
                                                      #{result => auto}),
                               Self ! {self(), R1, R2}
                       end),
    receive
        {Other, R1, R2} ->
            ?assertMatch({error, {python, <<"ValueError">>, _, _}}, R1),
            ?assertMatch({error, {python, <<"ValueError">>, _, _}}, R2)
    end,
    ?assertEqual({ok, 12}, py_obj:call(H, add, [1])),
    ?assertEqual(1, handles(1)),
    receive {finalized, _} = F -> ct:fail({shared_object_freed, F}) after 200 -> ok end,
    ok = py_obj:release(H),
    ok = pyport_ct:wait_until(fun() -> handles(1) =:= 0 end, 5000),
    ok.

-spec one_owner_cannot_take_every_handle() -> [{doc, string()}].
one_owner_cannot_take_every_handle() -> [{doc, "max_handles_per_owner bounds what one process holds ({error, {handle_owner_limit, 5}}, objects released), so another owner still gets handles; a refused result does not release handles others own."}].
-spec one_owner_cannot_take_every_handle(ct_suite:ct_config()) -> term().
one_owner_cannot_take_every_handle(_) ->
    Greedy = [py_event_loop_pool:run(?F, counter_handle, []) || _ <- lists:seq(1, 8)],
    {Ok, Refused} = lists:partition(fun(R) -> element(1, R) =:= ok end, Greedy),
    ?assertEqual(5, length(Ok)),
    [?assertEqual({error, {handle_owner_limit, 5}}, R) || R <- Refused],
    %% A single result over the owner's limit is refused whole.
    ?assertEqual({error, {handle_owner_limit, 5}},
                 py_event_loop_pool:run(?F, counters, [2])),
    ?assertEqual(5, handles(1)),
    Self = self(),
    spawn_link(fun() ->
                       {ok, [_, _, _]} = py_event_loop_pool:run(?F, counters, [3]),
                       %% Transfer to a full owner is refused too.
                       {ok, [H | _]} = py_event_loop_pool:run(?F, counters, [1]),
                       Self ! {transfer, py_obj:transfer(H, Self)},
                       receive stop -> ok end
               end),
    receive {transfer, T} -> ?assertEqual({error, {handle_owner_limit, 5}}, T) end,
    ?assertEqual(9, handles(1)),
    [{ok, H1} | _] = Ok,
    ?assertEqual({ok, 1}, py_obj:call(H1, add, [1])),
    ok.

-spec handles_are_used_by_owner_only() -> [{doc, string()}].
handles_are_used_by_owner_only() -> [{doc, "A process that is not a handle's owner (it guessed or was given the term) is refused {error, not_owner} by every py_obj function and as a task argument, until the owner shares it (py_obj:share/2) or transfers it."}].
-spec handles_are_used_by_owner_only(ct_suite:ct_config()) -> term().
handles_are_used_by_owner_only(_) ->
    {ok, H} = py_event_loop_pool:run(?F, counter_handle, []),
    {ok, 1} = py_obj:call(H, add, [1]),
    Self = self(),
    Try = fun() ->
                  spawn_link(fun() ->
                                     Self ! {tried, py_obj:call(H, add, [1]),
                                             py_event_loop_pool:run(?F, count_of, [H])}
                             end),
                  receive {tried, A, B} -> {A, B} end
          end,
    ?assertEqual({{error, not_owner}, {error, not_owner}}, Try()),
    {ok, 1} = py_obj:getattr(H, n),
    Friend = spawn_link(fun() ->
                                receive go -> ok end,
                                Self ! {friend, py_obj:call(H, add, [1]), py_obj:release(H)}
                        end),
    ok = py_obj:share(H, Friend),
    Friend ! go,
    receive {friend, R, Rel} ->
            ?assertEqual({ok, 2}, R),
            %% Sharing lends use, not ownership.
            ?assertEqual({error, not_owner}, Rel)
    end,
    ?assertEqual({ok, 2}, py_obj:getattr(H, n)),
    ok.

%% -- row 11: actor packets ---------------------------------------------------------

-spec forged_actor_reply_reaches_no_plain_caller() -> [{doc, string()}].
forged_actor_reply_reaches_no_plain_caller() -> [{doc, "A plain task that forges 20,000 actor_reply packets naming its own id (send_allow pids => none) gets none of them into its caller's mailbox; a real actor's calls are answered meanwhile."}].
-spec forged_actor_reply_reaches_no_plain_caller(ct_suite:ct_config()) -> term().
forged_actor_reply_reaches_no_plain_caller(_) ->
    {ok, Actor} = py_actor:start_link(?F, 'Echo', [], #{}),
    ?assertEqual(<<"ping">>, gen_server:call(Actor, <<"ping">>)),
    ?assertEqual({ok, 20000}, py_event_loop_pool:run(?F, forge_actor_replies, [20000],
                                                     #{timeout => 60000})),
    %% Whatever was routed came before the result.
    ?assertEqual([], [M || {py_actor, _, _} = M <- pyport_ct:mailbox()]),
    ?assertEqual([], pyport_ct:mailbox()),
    ?assertEqual(<<"pong">>, gen_server:call(Actor, <<"pong">>)),
    unlink(Actor),
    exit(Actor, kill),
    ok.

%% -- unbounded: an actor's backlog -------------------------------------------------

-spec actor_backlog_is_bounded() -> [{doc, string()}].
actor_backlog_is_bounded() -> [{doc, "A flood to an actor that never receives stops at actor_max_backlog: the proxy exits {actor_backlog_full, 1000} (its linked parent and monitors see it) instead of growing its mailbox without limit; the loop serves others."}].
-spec actor_backlog_is_bounded(ct_suite:ct_config()) -> term().
actor_backlog_is_bounded(_) ->
    {ok, Actor} = py_actor:start(?F, deaf, [], #{window => 8}),
    MRef = monitor(process, Actor),
    Flooder = spawn_link(fun() -> flood_actor(Actor, 0) end),
    receive
        {'DOWN', MRef, process, Actor, Reason} ->
            ?assertEqual({actor_backlog_full, 1000}, Reason)
    after 30000 ->
        {message_queue_len, N} = process_info(Actor, message_queue_len),
        ct:fail({backlog_not_bounded, N})
    end,
    unlink(Flooder),
    exit(Flooder, kill),
    ?assertEqual({ok, 4.0}, py_event_loop_pool:run(math, sqrt, [16.0])),
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              10000),
    ok.

-spec flood_actor(pid(), non_neg_integer()) -> ok.
flood_actor(Actor, N) ->
    Actor ! {n, N},
    case N rem 1000 of
        0 -> erlang:yield();
        _ -> ok
    end,
    case N < 2000000 of
        true -> flood_actor(Actor, N + 1);
        false -> ok
    end.

%% -- row 12: the venv installer ----------------------------------------------------

-spec venv_install_timeout_kills_process_group() -> [{doc, string()}].
venv_install_timeout_kills_process_group() -> [{doc, "A venv install that times out is killed by process group: pip and the build subprocess it started are both gone."}].
-spec venv_install_timeout_kills_process_group(ct_suite:ct_config()) -> term().
venv_install_timeout_kills_process_group(Config) ->
    Priv = ?config(priv_dir, Config),
    Venv = filename:join(Priv, "venv"),
    ok = filelib:ensure_path(Venv),
    %% An existing venv is not made again: only the install runs.
    ok = file:write_file(filename:join(Venv, "pyvenv.cfg"), <<"home = /nowhere\n">>),
    %% A stand-in pip found first on PYTHONPATH.
    Fake = filename:join(Priv, "fakepip"),
    ok = filelib:ensure_path(filename:join(Fake, "pip")),
    ok = file:write_file(filename:join([Fake, "pip", "__init__.py"]), <<>>),
    PidFile = filename:join(Priv, "pids"),
    ok = file:write_file(filename:join([Fake, "pip", "__main__.py"]),
                         <<"import os\nimport pyport_features_hostile as f\n"
                           "f.fake_pip(os.environ['FAKE_PIP_PIDS'])\n">>),
    Env = [{"PYTHONPATH", Fake ++ ":" ++ pyport_ct:helpers_dir()},
           {"FAKE_PIP_PIDS", PidFile}],
    Spec = #{path => Venv, requirements => ["anything"], timeout_ms => 3000},
    Result = pyport_venv:ensure(1, #{venv => Spec, env => Env}),
    {ok, Text} = file:read_file(PidFile),
    [Pip, Child] = [binary_to_integer(P) || P <- binary:split(string:trim(Text), <<" ">>)],
    try
        ?assertEqual({error, timeout}, Result),
        ok = pyport_ct_os:await_gone([Pip, Child], 5000)
    after
        pyport_ct_os:kill([Pip, Child])
    end.

%% -- rows 13 and 14: restart_loop --------------------------------------------------

-spec concurrent_restart_loop_all_answered_ok() -> [{doc, string()}].
concurrent_restart_loop_all_answered_ok() -> [{doc, "Three concurrent restart_loop/1 of one loop all return ok once a fresh port is up, none logs 'loop stays stopped', and the loop serves."}].
-spec concurrent_restart_loop_all_answered_ok(ct_suite:ct_config()) -> term().
concurrent_restart_loop_all_answered_ok(_) ->
    ok = pyport_ct:capture_logs(),
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    Self = self(),
    Restarters = [spawn_link(fun() ->
                                     Self ! {self(), py_event_loop_pool:restart_loop(
                                                       {pyport_loop, 1})}
                             end) || _ <- lists:seq(1, 3)],
    Results = [receive {R, Res} -> Res after 60000 -> ct:fail(restart_hangs) end
               || R <- Restarters],
    ?assertEqual([ok, ok, ok], Results),
    ?assertMatch({ok, _}, py_event_loop:run({pyport_loop, 1}, ?H, getpid, [], #{})),
    ?assertNotEqual(Old, maps:get(os_pid, pyport_ct:loop_stats(1))),
    Stopped = [E || {pyport_ct_log, E} <- pyport_ct:mailbox(),
                    pyport_ct:log_mentions(E, <<"stays stopped">>)],
    ?assertEqual([], Stopped),
    ok.

-spec restart_loop_under_load_gives_documented_replies() -> [{doc, string()}].
restart_loop_under_load_gives_documented_replies() -> [{doc, "restart_loop/1 while 50 callers keep submitting to that loop: every task is answered {ok, _} or {error, cancelled} (running tasks) and new ones run on the fresh port; no caller sees worker_down."}].
-spec restart_loop_under_load_gives_documented_replies(ct_suite:ct_config()) -> term().
restart_loop_under_load_gives_documented_replies(_) ->
    Self = self(),
    Stop = erlang:monotonic_time(millisecond) + 3000,
    Callers = [spawn_link(fun() -> Self ! {self(), submit_until(Stop, #{})} end)
               || _ <- lists:seq(1, 50)],
    timer:sleep(500),
    ok = py_event_loop_pool:restart_loop({pyport_loop, 1}),
    timer:sleep(300),
    ok = py_event_loop_pool:restart_loop({pyport_loop, 1}),
    Counts = lists:foldl(fun(C, Acc) ->
                                 receive {C, M} -> maps:merge_with(fun(_, A, B) -> A + B end,
                                                                   M, Acc)
                                 after 60000 -> ct:fail(caller_hangs)
                                 end
                         end, #{}, Callers),
    ct:pal("results: ~p", [Counts]),
    ?assertEqual([], maps:keys(maps:without([ok, cancelled], Counts))),
    ?assert(maps:get(ok, Counts, 0) > 0),
    ok.

-spec submit_until(integer(), map()) -> map().
submit_until(Stop, Acc) ->
    case erlang:monotonic_time(millisecond) > Stop of
        true ->
            Acc;
        false ->
            Key = case py_event_loop:run({pyport_loop, 1}, ?H, sleep_then, [0.02, x],
                                         #{timeout => 30000}) of
                      {ok, <<"x">>} -> ok;
                      {error, cancelled} -> cancelled;
                      Other -> Other
                  end,
            submit_until(Stop, maps:update_with(Key, fun(N) -> N + 1 end, 1, Acc))
    end.

%% -- unbounded: telemetry ----------------------------------------------------------

-spec raising_telemetry_handler_detached_and_logged_once() -> [{doc, string()}].
raising_telemetry_handler_detached_and_logged_once() -> [{doc, "A telemetry handler that raises, called by 1000 tasks of 50 processes at once, is detached once and logged once; the tasks are unaffected."}].
-spec raising_telemetry_handler_detached_and_logged_once(ct_suite:ct_config()) -> term().
raising_telemetry_handler_detached_and_logged_once(_) ->
    ok = pyport_ct:capture_logs(),
    ok = py_telemetry:attach(broken, [[pyport, task, stop]],
                             fun(_, _, _, _) -> error(broken_handler) end, none),
    Self = self(),
    Gate = make_ref(),
    Procs = [spawn_link(fun() ->
                                receive Gate -> ok end,
                                Rs = [py_event_loop_pool:run(math, sqrt, [4.0])
                                      || _ <- lists:seq(1, 20)],
                                Self ! {self(), lists:usort(Rs)}
                        end) || _ <- lists:seq(1, 50)],
    [P ! Gate || P <- Procs],
    [receive {P, Rs} -> ?assertEqual([{ok, 2.0}], Rs) end || P <- Procs],
    ?assertEqual([], py_telemetry:list()),
    timer:sleep(200),
    Logged = [E || {pyport_ct_log, E} <- pyport_ct:mailbox(),
                   pyport_ct:log_mentions(E, <<"telemetry handler">>)],
    ?assertEqual(1, length(Logged)),
    ok.

%% -- helpers -----------------------------------------------------------------------

-spec handles(pos_integer()) -> non_neg_integer().
handles(Index) ->
    maps:get(handles, pyport_ct:loop_stats(Index)).

-spec distribution() -> ok.
distribution() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start(list_to_atom("py_features_ct_" ++ os:getpid()),
                                       #{name_domain => shortnames}),
            ok;
        _ ->
            ok
    end.
