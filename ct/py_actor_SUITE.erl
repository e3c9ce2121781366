%% Python actors (docs/actors.md): a coroutine or erlang.GenServer bound to
%% an Erlang proxy process, with a mailbox, OTP lifetimes and supervision.
%% Each case gets a freshly started application with two loops.
-module(py_actor_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(A, pyport_actor).
-define(NUM_LOOPS, 2).

-spec all() -> [atom()].
all() ->
    [echo_actor, self_is_the_proxy, counter_gen_server_10k_calls,
     gen_server_reply_later_and_stop, start_failures, cast_flood_slow_actor,
     receive_timeout, selective_receive, actor_raises, proxy_killed,
     linked_parent_exit_cancels, port_exit_fails_actors,
     supervisor_restarts_after_port_kill9, ten_thousand_actors_one_loop,
     actors_on_both_loops, registered_name, bad_options,
     unconvertible_message_is_dropped, erlang_call_from_an_actor,
     forged_actor_packets_are_contained, call_without_handle_call,
     spinning_handler_is_interrupted, spinning_actor_default_step_timeout,
     bad_step_timeout].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_Case, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:stop().

-spec echo_actor() -> [{doc, string()}].
echo_actor() -> [{doc, "A coroutine actor gets what is sent to its pid, in order, and answers with erlang.send; it ends normally."}].
-spec echo_actor(ct_suite:ct_config()) -> term().
echo_actor(_) ->
    {ok, Pid} = py_actor:start_link(?A, echo, [], #{}),
    MRef = monitor(process, Pid),
    [Pid ! {self(), N} || N <- lists:seq(1, 100)],
    ?assertEqual([{<<"echo">>, N} || N <- lists:seq(1, 100)],
                 [receive {<<"echo">>, _} = E -> E after 5000 -> timeout end
                  || _ <- lists:seq(1, 100)]),
    Pid ! stop,
    ?assertEqual(normal, down(MRef)).

-spec self_is_the_proxy() -> [{doc, string()}].
self_is_the_proxy() -> [{doc, "Inside the actor erlang.self() is the proxy's pid, so others can be told where to send."}].
-spec self_is_the_proxy(ct_suite:ct_config()) -> term().
self_is_the_proxy(_) ->
    {ok, Pid} = py_actor:start_link(?A, echo_self, [], #{}),
    Pid ! {who, self()},
    receive {<<"self">>, Reported} -> ?assertEqual(Pid, Reported)
    after 5000 -> ct:fail(no_answer)
    end,
    stop_actor(Pid).

-spec counter_gen_server_10k_calls() -> [{doc, string()}].
counter_gen_server_10k_calls() -> [{doc, "An erlang.GenServer answers 10k gen_server:call/3 in order through the OTP From, and casts change its state."}].
-spec counter_gen_server_10k_calls(ct_suite:ct_config()) -> term().
counter_gen_server_10k_calls(_) ->
    {ok, Pid} = py_actor:start_link(?A, 'Counter', [5], #{}),
    ?assertEqual(5, gen_server:call(Pid, get, 5000)),
    Replies = [gen_server:call(Pid, bump, 5000) || _ <- lists:seq(1, 10000)],
    ?assertEqual(lists:seq(6, 10005), Replies),
    ok = gen_server:cast(Pid, {set, 42}),
    ?assertEqual(44, gen_server:call(Pid, {add, 2}, 5000)),
    Pid ! {tell, self()},
    receive {<<"value">>, V} -> ?assertEqual(44, V)
    after 5000 -> ct:fail(no_info_reply)
    end,
    stop_actor(Pid).

-spec gen_server_reply_later_and_stop() -> [{doc, string()}].
gen_server_reply_later_and_stop() -> [{doc, "handle_call may return NOREPLY and answer later from another handler; stop() ends the actor normal; a raising handler crashes the caller's call."}].
-spec gen_server_reply_later_and_stop(ct_suite:ct_config()) -> term().
gen_server_reply_later_and_stop(_) ->
    {ok, Pid} = py_actor:start(?A, 'Counter', [], #{}),
    Self = self(),
    Waiter = spawn_link(fun() -> Self ! {later, gen_server:call(Pid, later, 5000)} end),
    ok = pyport_ct:wait_until(fun() -> is_process_alive(Waiter) end, 1000),
    timer:sleep(100),
    ok = gen_server:cast(Pid, {set, 7}),
    receive {later, Later} -> ?assertEqual({<<"later">>, 7}, Later)
    after 5000 -> ct:fail(no_later_reply)
    end,
    MRef = monitor(process, Pid),
    ?assertEqual(<<"stopping">>, gen_server:call(Pid, stop, 5000)),
    ?assertEqual(normal, down(MRef)),
    {ok, Crashing} = py_actor:start(?A, 'Counter', [], #{}),
    ?assertMatch({{python, <<"RuntimeError">>, <<"asked to crash">>, _}, _},
                 catch_exit(fun() -> gen_server:call(Crashing, crash, 5000) end)).

-spec start_failures() -> [{doc, string()}].
start_failures() -> [{doc, "A start that fails in Python (no module, not a coroutine, a GenServer init that raises) is start's {error, {python, ...}} and leaves no process."}].
-spec start_failures(ct_suite:ct_config()) -> term().
start_failures(_) ->
    process_flag(trap_exit, true),
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>, _, _}},
                 py_actor:start_link(no_such_module, f, [], #{})),
    ?assertMatch({error, {python, <<"TypeError">>, _, _}},
                 py_actor:start_link(?A, not_a_coroutine, [], #{})),
    ?assertMatch({error, {python, <<"KeyError">>, <<"'no config'">>, _}},
                 py_actor:start_link(?A, 'FailingInit', [], #{})),
    %% The link to a failed start exits normal.
    receive {'EXIT', _, Reason} -> ?assertEqual(normal, Reason) after 1000 -> ok end,
    ?assertEqual(0, actor_count(1) + actor_count(2)).

-spec cast_flood_slow_actor() -> [{doc, string()}].
cast_flood_slow_actor() -> [{doc, "100k gen_server:cast to a slow actor arrive in order; the flood waits in the proxy's mailbox while the port's queue and Python's mailbox stay within the window."}].
-spec cast_flood_slow_actor(ct_suite:ct_config()) -> term().
cast_flood_slow_actor(_) ->
    Window = 64,
    {ok, Pid} = py_actor:start_link(?A, 'Sink', [0.02], #{loop => 1, window => Window}),
    {ok, #{port := Port}} = loop_record(1),
    N = 100000,
    [gen_server:cast(Pid, {n, I}) || I <- lists:seq(0, N - 1)],
    {message_queue_len, Queued} = process_info(Pid, message_queue_len),
    ct:pal("proxy mailbox right after the flood: ~b messages", [Queued]),
    ?assert(Queued > N div 2),
    MaxPortQueue = sample_port_queue(Port, Pid, 0),
    ct:pal("largest port queue seen: ~b bytes", [MaxPortQueue]),
    %% A window of ~30-byte packets, with room for the driver's own framing.
    ?assert(MaxPortQueue =< Window * 64),
    {Count, MostHeld} = gen_server:call(Pid, stats, 30000),
    ?assertEqual(N, Count),
    ct:pal("most messages held in Python's mailbox: ~b", [MostHeld]),
    ?assert(MostHeld =< Window),
    stop_actor(Pid).

-spec receive_timeout() -> [{doc, string()}].
receive_timeout() -> [{doc, "erlang.receive(timeout=...) raises TimeoutError when nothing comes, and returns a message that does."}].
-spec receive_timeout(ct_suite:ct_config()) -> term().
receive_timeout(_) ->
    {ok, Quiet} = py_actor:start_link(?A, receive_timeout, [self(), 0.1], #{}),
    receive <<"timed_out">> -> ok after 5000 -> ct:fail(no_timeout) end,
    stop_actor(Quiet),
    {ok, Told} = py_actor:start_link(?A, receive_timeout, [self(), 5.0], #{}),
    Told ! hello,
    receive {<<"got">>, Got} -> ?assertEqual(<<"hello">>, Got)
    after 5000 -> ct:fail(no_message)
    end,
    stop_actor(Told).

-spec selective_receive() -> [{doc, string()}].
selective_receive() -> [{doc, "receive(tags=...) and receive(match=...) take the first matching message; the skipped ones stay, in order."}].
-spec selective_receive(ct_suite:ct_config()) -> term().
selective_receive(_) ->
    {ok, Pid} = py_actor:start_link(?A, selective, [self()], #{window => 2}),
    [Pid ! M || M <- [a, b, c, {urgent, 1}]],
    receive Got -> ?assertEqual([{<<"urgent">>, 1}, <<"b">>, <<"a">>, <<"c">>], Got)
    after 5000 -> ct:fail(no_answer)
    end,
    stop_actor(Pid).

-spec actor_raises() -> [{doc, string()}].
actor_raises() -> [{doc, "An actor that raises makes its proxy exit {python, Type, Message, Traceback}, seen by links and monitors."}].
-spec actor_raises(ct_suite:ct_config()) -> term().
actor_raises(_) ->
    process_flag(trap_exit, true),
    {ok, Pid} = py_actor:start_link(?A, raises, [<<"boom">>], #{}),
    Pid ! go,
    receive {'EXIT', Pid, Reason} ->
            ?assertMatch({python, <<"ValueError">>, <<"boom">>, _}, Reason),
            {python, _, _, Tb} = Reason,
            ?assertNotEqual(nomatch, binary:match(Tb, <<"raises">>))
    after 5000 -> ct:fail(no_exit)
    end.

-spec call_without_handle_call() -> [{doc, string()}].
call_without_handle_call() -> [{doc, "A GenServer that does not define handle_call refuses a call with NotImplementedError: the actor exits with it and so does the caller's gen_server:call."}].
-spec call_without_handle_call(ct_suite:ct_config()) -> term().
call_without_handle_call(_) ->
    process_flag(trap_exit, true),
    {ok, Pid} = py_actor:start_link(?A, 'CastsOnly', [], #{}),
    ok = gen_server:cast(Pid, ignored),
    ?assertMatch({{python, <<"NotImplementedError">>, <<"CastsOnly does not handle calls", _/binary>>, _}, _},
                 catch_exit(fun() -> gen_server:call(Pid, hello, 5000) end)),
    receive {'EXIT', Pid, Reason} ->
            ?assertMatch({python, <<"NotImplementedError">>, _, _}, Reason)
    after 5000 -> ct:fail(no_exit)
    end.

-spec proxy_killed() -> [{doc, string()}].
proxy_killed() -> [{doc, "Killing the proxy cancels the coroutine: its finally runs, and the loop goes on."}].
-spec proxy_killed(ct_suite:ct_config()) -> term().
proxy_killed(_) ->
    {ok, Pid} = py_actor:start(?A, guarded, [<<"killed">>], #{loop => 1}),
    ok = wait_python(fun() -> run1(is_waiting, [<<"killed">>]) end),
    exit(Pid, kill),
    ok = wait_python(fun() -> lists:member(<<"killed">>, run1(finished_names, [])) end),
    ?assertEqual(0, actor_count(1)).

-spec linked_parent_exit_cancels() -> [{doc, string()}].
linked_parent_exit_cancels() -> [{doc, "When the process that start_link'ed an actor exits, the actor's coroutine is cancelled (finally runs)."}].
-spec linked_parent_exit_cancels(ct_suite:ct_config()) -> term().
linked_parent_exit_cancels(_) ->
    Self = self(),
    Parent = spawn(fun() ->
                           {ok, Pid} = py_actor:start_link(?A, guarded, [<<"orphan">>],
                                                           #{loop => 1}),
                           Self ! {actor, Pid},
                           receive die -> exit(parent_done) end
                   end),
    Actor = receive {actor, P} -> P after 5000 -> ct:fail(no_start) end,
    MRef = monitor(process, Actor),
    Parent ! die,
    ?assertEqual(parent_done, down(MRef)),
    ok = wait_python(fun() -> lists:member(<<"orphan">>, run1(finished_names, [])) end).

-spec port_exit_fails_actors() -> [{doc, string()}].
port_exit_fails_actors() -> [{doc, "When the port dies every actor on it exits {python_exit, Status} at once; actors of the other loop live on."}].
-spec port_exit_fails_actors(ct_suite:ct_config()) -> term().
port_exit_fails_actors(_) ->
    process_flag(trap_exit, true),
    Pids = [begin {ok, P} = py_actor:start_link(?A, idle, [], #{loop => 1}), P end
            || _ <- lists:seq(1, 20)],
    {ok, Other} = py_actor:start_link(?A, 'Counter', [], #{loop => 2}),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    Reasons = [receive {'EXIT', P, R} -> R after 5000 -> timeout end || P <- Pids],
    lists:foreach(fun(R) -> ?assertMatch({python_exit, _}, R) end, Reasons),
    ?assertEqual(1, gen_server:call(Other, bump, 5000)),
    stop_actor(Other).

-spec supervisor_restarts_after_port_kill9() -> [{doc, string()}].
supervisor_restarts_after_port_kill9() -> [{doc, "A one_for_one supervisor with py_actor:child_spec/1 restarts the actor on the fresh port after kill -9 of its port."}].
-spec supervisor_restarts_after_port_kill9(ct_suite:ct_config()) -> term().
supervisor_restarts_after_port_kill9(_) ->
    Spec = py_actor:child_spec(#{id => counter, module => ?A, function => 'Counter',
                                 args => [100], opts => #{loop => 1}}),
    {ok, Sup} = supervisor:start_link(?MODULE, {sup, [Spec]}),
    [{counter, Old, worker, [py_actor]}] = supervisor:which_children(Sup),
    ?assertEqual(101, gen_server:call(Old, bump, 5000)),
    MRef = monitor(process, Old),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ?assertMatch({python_exit, _}, down(MRef)),
    ok = pyport_ct:wait_until(
           fun() ->
                   case supervisor:which_children(Sup) of
                       [{counter, New, _, _}] when is_pid(New), New =/= Old -> true;
                       _ -> false
                   end
           end, 15000),
    [{counter, New, _, _}] = supervisor:which_children(Sup),
    %% A fresh actor (init again) on a fresh port.
    ?assertEqual(101, gen_server:call(New, bump, 5000)),
    ?assertNotEqual(OsPid, maps:get(os_pid, pyport_ct:loop_stats(1))),
    unlink(Sup),
    SupRef = monitor(process, Sup),
    exit(Sup, shutdown),
    ?assertEqual(shutdown, down(SupRef)),
    ok = wait_python(fun() -> actor_count(1) =:= 0 end).

-spec init({sup, [supervisor:child_spec()]})
    -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({sup, Specs}) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, Specs}}.

-spec ten_thousand_actors_one_loop() -> [{doc, string()}].
ten_thousand_actors_one_loop() -> [{doc, "10k idle actors on one loop: all start, all answer, the loop still serves tasks; memory per actor on both sides is reported."}].
-spec ten_thousand_actors_one_loop(ct_suite:ct_config()) -> term().
ten_thousand_actors_one_loop(_) ->
    N = 10000,
    erlang:garbage_collect(),
    RssBefore = run1(rss_kib, []),
    Pids = start_many(N),
    ?assertEqual(N, actor_count(1)),
    ErlangBytes = lists:sum([element(2, process_info(P, memory)) || P <- Pids]),
    RssAfter = run1(rss_kib, []),
    PerActorPython = (RssAfter - RssBefore) * 1024 div N,
    ct:pal("~b idle actors: Erlang proxies ~b bytes each (process_info memory), "
           "Python ~b bytes each (RSS growth)", [N, ErlangBytes div N, PerActorPython]),
    ?assertEqual({ok, 4.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [16.0], #{})),
    MRefs = [monitor(process, P) || P <- Pids],
    [P ! done || P <- Pids],
    [?assertEqual(normal, down(M)) || M <- MRefs],
    ?assertEqual(0, actor_count(1)).

-spec actors_on_both_loops() -> [{doc, string()}].
actors_on_both_loops() -> [{doc, "The loop option pins an actor: actors on loop 1 and loop 2 run in the two ports."}].
-spec actors_on_both_loops(ct_suite:ct_config()) -> term().
actors_on_both_loops(_) ->
    OsPids = [begin
                  {ok, P} = py_actor:start_link(?A, report_pid, [self()], #{loop => L}),
                  receive {<<"os_pid">>, OsPid} -> {L, P, OsPid}
                  after 5000 -> ct:fail({no_pid, L})
                  end
              end || L <- [1, 2]],
    [{1, P1, Os1}, {2, P2, Os2}] = OsPids,
    ?assertEqual(maps:get(os_pid, pyport_ct:loop_stats(1)), Os1),
    ?assertEqual(maps:get(os_pid, pyport_ct:loop_stats(2)), Os2),
    ?assertNotEqual(Os1, Os2),
    stop_actor(P1),
    stop_actor(P2).

-spec registered_name() -> [{doc, string()}].
registered_name() -> [{doc, "name => {local, N} registers the proxy: gen_server:call by name works, sys:suspend/resume hold and release it, a second start is already_started."}].
-spec registered_name(ct_suite:ct_config()) -> term().
registered_name(_) ->
    {ok, Pid} = py_actor:start_link(?A, 'Counter', [1], #{name => {local, py_counter}}),
    ?assertEqual(Pid, whereis(py_counter)),
    ?assertEqual(2, gen_server:call(py_counter, bump, 5000)),
    %% sys support: suspended, a call waits; resumed, it is answered.
    ok = sys:suspend(py_counter),
    Self = self(),
    _ = spawn_link(fun() -> Self ! {bumped, gen_server:call(py_counter, bump, 5000)} end),
    receive {bumped, _} -> ct:fail(answered_while_suspended) after 200 -> ok end,
    ok = sys:resume(py_counter),
    receive {bumped, Bumped} -> ?assertEqual(3, Bumped) after 5000 -> ct:fail(not_resumed) end,
    ?assertEqual({error, {already_started, Pid}},
                 py_actor:start(?A, 'Counter', [], #{name => {local, py_counter}})),
    stop_actor(Pid),
    ?assertEqual(undefined, whereis(py_counter)).

-spec bad_options() -> [{doc, string()}].
bad_options() -> [{doc, "Bad arguments and options are the caller's badarg, before any process starts."}].
-spec bad_options(ct_suite:ct_config()) -> term().
bad_options(_) ->
    ?assertError({badarg, {option, colour, blue}},
                 py_actor:start_link(?A, echo, [], #{colour => blue})),
    ?assertError({badarg, {option, window, 0}},
                 py_actor:start_link(?A, echo, [], #{window => 0})),
    ?assertError({badarg, {args, not_a_list}},
                 py_actor:start_link(?A, echo, not_a_list, #{})),
    ?assertError({badarg, {spec, nope}}, py_actor:child_spec(nope)).

-spec unconvertible_message_is_dropped() -> [{doc, string()}].
unconvertible_message_is_dropped() -> [{doc, "A message with no Python form (a fun) is dropped with a warning but counted, so the window does not shrink: later messages still flow."}].
-spec unconvertible_message_is_dropped(ct_suite:ct_config()) -> term().
unconvertible_message_is_dropped(_) ->
    {ok, Pid} = py_actor:start_link(?A, echo, [], #{window => 2}),
    [Pid ! {self(), fun() -> ok end} || _ <- lists:seq(1, 5)],
    [Pid ! {self(), N} || N <- lists:seq(1, 5)],
    ?assertEqual([{<<"echo">>, N} || N <- lists:seq(1, 5)],
                 [receive {<<"echo">>, _} = E -> E after 5000 -> timeout end
                  || _ <- lists:seq(1, 5)]),
    stop_actor(Pid).

-spec erlang_call_from_an_actor() -> [{doc, string()}].
erlang_call_from_an_actor() -> [{doc, "An actor may erlang.async_call and erlang.call Erlang callbacks and erlang.send replies while it serves its mailbox."}].
-spec erlang_call_from_an_actor(ct_suite:ct_config()) -> term().
erlang_call_from_an_actor(_) ->
    ok = py_callback:register(actor_double, fun([X]) -> 2 * X end),
    {ok, Pid} = py_actor:start_link(?A, calls_erlang, [self()], #{}),
    [Pid ! N || N <- lists:seq(1, 20)],
    ?assertEqual([{2 * N, 2 * N} || N <- lists:seq(1, 20)],
                 [receive {_, _} = R -> R after 5000 -> timeout end || _ <- lists:seq(1, 20)]),
    Pid ! stop,
    ok = py_callback:unregister(actor_double).

-spec forged_actor_packets_are_contained() -> [{doc, string()}].
forged_actor_packets_are_contained() -> [{doc, "Python forging actor packets (an ack beyond the window, a reply to no call, an unknown or malformed id) cannot widen the window or reach anyone; the malformed one is logged."}].
-spec forged_actor_packets_are_contained(ct_suite:ct_config()) -> term().
forged_actor_packets_are_contained(_) ->
    ok = pyport_ct:capture_logs(),
    Window = 4,
    {ok, Pid} = py_actor:start_link(?A, 'Forger', [0.01], #{window => Window}),
    N = 3000,
    [gen_server:cast(Pid, {n, I}) || I <- lists:seq(0, N - 1)],
    {Count, MostHeld} = gen_server:call(Pid, stats, 30000),
    ?assertEqual(N, Count),
    ?assert(MostHeld =< Window),
    _ = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"actor_ack">>) end, 5000),
    ok = pyport_ct:release_logs(),
    %% The forged reply reached nobody.
    ?assertEqual([], pyport_ct:mailbox()),
    stop_actor(Pid).

-spec spinning_handler_is_interrupted() -> [{doc, string()}].
spinning_handler_is_interrupted() -> [{doc, "A GenServer handler that spins past the actor's step_timeout is interrupted by the watchdog: the actor and the caller's call exit timeout, the port is not killed and a bystander task on the same loop gets its result."}].
-spec spinning_handler_is_interrupted(ct_suite:ct_config()) -> term().
spinning_handler_is_interrupted(_) ->
    process_flag(trap_exit, true),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    {ok, Pid} = py_actor:start_link(?A, 'Spinner', [], #{loop => 1, step_timeout => 300}),
    ?assertEqual(<<"echo">>, gen_server:call(Pid, echo, 5000)),
    Bystander = py_event_loop:create_task({pyport_loop, 1}, asyncio, sleep,
                                          [4, <<"bystander">>], #{}),
    ?assertMatch({timeout, _}, catch_exit(fun() -> gen_server:call(Pid, spin, 10000) end)),
    receive {'EXIT', Pid, Reason} -> ?assertEqual(timeout, Reason)
    after 10000 -> ct:fail(no_exit)
    end,
    ?assertEqual({ok, <<"bystander">>}, py_event_loop:await(Bystander, 10000)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec spinning_actor_default_step_timeout() -> [{doc, string()}].
spinning_actor_default_step_timeout() -> [{doc, "Without options, a bare actor whose step spins is interrupted at the default step_timeout (5 s) rather than holding its loop for ever: it exits timeout and a bystander task (no deadline of its own) gets its result."}].
-spec spinning_actor_default_step_timeout(ct_suite:ct_config()) -> term().
spinning_actor_default_step_timeout(_) ->
    process_flag(trap_exit, true),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    {ok, Pid} = py_actor:start_link(?A, spins_on, [self()], #{loop => 1}),
    Bystander = py_event_loop:create_task({pyport_loop, 1}, asyncio, sleep,
                                          [0.1, <<"bystander">>], #{}),
    Pid ! go,
    receive <<"spinning">> -> ok after 5000 -> ct:fail(not_spinning) end,
    receive {'EXIT', Pid, Reason} -> ?assertEqual(timeout, Reason)
    after 20000 -> ct:fail(no_exit)
    end,
    ?assertEqual({ok, <<"bystander">>}, py_event_loop:await(Bystander, 10000)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec bad_step_timeout() -> [{doc, string()}].
bad_step_timeout() -> [{doc, "A step_timeout that is neither a non-negative integer nor infinity is badarg at the caller; infinity starts the actor."}].
-spec bad_step_timeout(ct_suite:ct_config()) -> term().
bad_step_timeout(_) ->
    ?assertError({badarg, {option, step_timeout, -1}},
                 py_actor:start(?A, echo, [], #{step_timeout => -1})),
    ?assertError({badarg, {option, step_timeout, soon}},
                 py_actor:start(?A, echo, [], #{step_timeout => soon})),
    {ok, Pid} = py_actor:start(?A, 'Counter', [1], #{step_timeout => infinity}),
    ?assertEqual(1, gen_server:call(Pid, get, 5000)),
    stop_actor(Pid).

%% Helpers.

-spec down(reference()) -> term().
down(MRef) ->
    receive {'DOWN', MRef, process, _, Reason} -> Reason
    after 10000 -> ct:fail(no_down)
    end.

-spec catch_exit(fun(() -> term())) -> term().
catch_exit(Fun) ->
    try Fun() of
        Value -> {returned, Value}
    catch
        exit:Reason -> Reason
    end.

-spec stop_actor(pid()) -> ok.
stop_actor(Pid) ->
    %% A linked caller that does not trap exits would die with it.
    unlink(Pid),
    MRef = monitor(process, Pid),
    ok = proc_lib:stop(Pid, shutdown, 5000),
    _ = down(MRef),
    ok.

-spec run1(atom(), list()) -> term().
run1(Func, Args) ->
    {ok, Value} = py_event_loop:run({pyport_loop, 1}, ?A, Func, Args, #{}),
    Value.

-spec actor_count(pos_integer()) -> non_neg_integer().
actor_count(Loop) ->
    {ok, Count} = py_event_loop:run({pyport_loop, Loop}, ?A, actor_count, [], #{}),
    Count.

-spec wait_python(fun(() -> boolean())) -> ok.
wait_python(Fun) ->
    pyport_ct:wait_until(Fun, 5000).

-spec loop_record(pos_integer()) -> {ok, #{port := port()}}.
loop_record(Index) ->
    {ok, Loop} = pyport_registry:lookup(Index),
    #{port := Port} = pyport_calls:describe(Loop),
    {ok, #{port => Port}}.

%% Samples the port's queue until the actor has drained the flood.
-spec sample_port_queue(port(), pid(), non_neg_integer()) -> non_neg_integer().
sample_port_queue(Port, Pid, Max) ->
    case erlang:port_info(Port, queue_size) of
        {queue_size, Size} ->
            case process_info(Pid, message_queue_len) of
                {message_queue_len, 0} -> max(Max, Size);
                {message_queue_len, _} ->
                    timer:sleep(5),
                    sample_port_queue(Port, Pid, max(Max, Size))
            end;
        undefined ->
            ct:fail(port_gone)
    end.

%% Starts N idle actors on loop 1 from a few processes at a time.
-spec start_many(pos_integer()) -> [pid()].
start_many(N) ->
    Self = self(),
    Starters = 8,
    Per = N div Starters,
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() ->
                                       Ps = [begin
                                                 {ok, P} = py_actor:start(?A, idle, [], #{loop => 1}),
                                                 P
                                             end || _ <- lists:seq(1, Per)],
                                       Self ! {Ref, Ps}
                               end),
                Ref
            end || _ <- lists:seq(1, Starters)],
    lists:append([receive {Ref, Ps} -> Ps after 60000 -> ct:fail(slow_start) end
                  || Ref <- Refs]).
