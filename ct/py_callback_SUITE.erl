%% Python -> Erlang calls: erlang.call / erlang.async_call on functions
%% registered with py_callback, their errors, slow callbacks, re-entrant
%% Python -> Erlang -> Python chains on the same loop and across loops,
%% and erlang.schedule / schedule_py.
-module(py_callback_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(I, pyport_interop_helpers).
-define(H, pyport_ct_helpers).
-define(LONG, #{timeout => 30000}).
-define(A, pyport_callback_attack).

-spec all() -> [{group, atom()}].
all() ->
    [{group, calls}, {group, slow}, {group, reentrant}, {group, schedule},
     {group, lifecycle}, {group, attack}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{calls, [],
      [sync_call, atom_and_binary_names, many_args_and_types, mf_callback,
       callback_runs_in_a_fresh_process, unknown_callback, unregister,
       error_classes, unconvertible_reason_is_text, unconvertible_result,
       killed_callback, async_call, async_call_error, many_async_calls,
       concurrent_callers]},
     {slow, [],
      [slow_sync_callback_other_tasks_finish,
       slow_async_callback_other_tasks_finish,
       timeout_while_blocked_in_call, caller_death_while_blocked_in_call]},
     {reentrant, [],
      [same_loop_chain, same_loop_chain_from_coroutine, same_loop_async_chain,
       other_loops_chain, pool_chain, ten_levels_same_loop]},
     {schedule, [],
      [schedule_continues_in_erlang, schedule_py_with_time_slices]},
     {lifecycle, [],
      [registry_survives_port_restart, register_checks_arguments,
       registered_names]},
     %% Issue 23, rows 1-4: the request path under attack. Last: these
     %% cases kill and restart loop 1.
     {attack, [],
      [answers_never_block_the_worker, callbacks_per_loop_are_limited,
       abandoned_callbacks_end, callbacks_end_with_restart_loop,
       callbacks_end_with_port_exit, send_to_stopped_node_never_blocks]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}]),
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(_, Config) ->
    Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) ->
    ok.

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_, Config) ->
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    [ok = py_callback:unregister(Name) || Name <- py_callback:registered()],
    ok.

%% -- calls ---------------------------------------------------------------------

-spec sync_call() -> [{doc, string()}].
sync_call() -> [{doc, "erlang.call runs the registered fun with the Python arguments as a list and returns its result."}].
-spec sync_call(ct_suite:ct_config()) -> term().
sync_call(_) ->
    ok = py_callback:register(double, fun([X]) -> X * 2 end),
    ?assertEqual({ok, 42}, py_event_loop:run(?I, call, [<<"double">>, 21])).

-spec atom_and_binary_names() -> [{doc, string()}].
atom_and_binary_names() -> [{doc, "A callback registered under an atom or a binary is found by the same name from Python, as str or erlang.Atom."}].
-spec atom_and_binary_names(ct_suite:ct_config()) -> term().
atom_and_binary_names(_) ->
    ok = py_callback:register(by_atom, fun(_) -> atom end),
    ok = py_callback:register(<<"by_binary">>, fun(_) -> binary end),
    ?assertEqual({ok, <<"atom">>}, py_event_loop:run(?I, call, [<<"by_atom">>])),
    ?assertEqual({ok, <<"binary">>}, py_event_loop:run(?I, call, [by_binary])),
    ?assertEqual({ok, <<"atom">>},
                 py_event_loop:eval(<<"__import__('erlang').call(__import__('erlang').Atom('by_atom'))">>)).

-spec many_args_and_types() -> [{doc, string()}].
many_args_and_types() -> [{doc, "Arguments and results cross with the type table in both directions."}].
-spec many_args_and_types(ct_suite:ct_config()) -> term().
many_args_and_types(_) ->
    Self = self(),
    ok = py_callback:register(echo, fun(Args) -> Self ! {args, Args}, {Args, self()} end),
    {ok, {Back, Pid}} = py_event_loop:run(?I, call, [echo, 1, <<"two">>, [3.5], #{k => none},
                                                     {bytes, <<0, 255>>}, true]),
    receive {args, Args} -> ok after 5000 -> Args = ct:fail(no_args) end,
    ?assertEqual([1, <<"two">>, [3.5], #{<<"k">> => none}, <<0, 255>>, true], Args),
    ?assertEqual(Args, Back),
    ?assert(is_pid(Pid)).

-spec mf_callback() -> [{doc, string()}].
mf_callback() -> [{doc, "A {Module, Function} callback is called as Module:Function(Args)."}].
-spec mf_callback(ct_suite:ct_config()) -> term().
mf_callback(_) ->
    ok = py_callback:register(reverse, {lists, reverse}),
    ?assertEqual({ok, [3, 2, 1]}, py_event_loop:run(?I, call, [reverse, 1, 2, 3])).

-spec callback_runs_in_a_fresh_process() -> [{doc, string()}].
callback_runs_in_a_fresh_process() -> [{doc, "Each call runs in a new process, neither the worker nor the caller."}].
-spec callback_runs_in_a_fresh_process(ct_suite:ct_config()) -> term().
callback_runs_in_a_fresh_process(_) ->
    ok = py_callback:register(whoami, fun(_) -> self() end),
    {ok, P1} = py_event_loop:run(?I, call, [whoami]),
    {ok, P2} = py_event_loop:run(?I, call, [whoami]),
    #{worker := Worker} = pyport_ct:loop_stats(1),
    ?assertNotEqual(P1, P2),
    ?assertNotEqual(Worker, P1),
    ?assertNotEqual(self(), P1).

-spec unknown_callback() -> [{doc, string()}].
unknown_callback() -> [{doc, "Calling a name nobody registered raises erlang.UnknownCallbackError (a CallError) naming it."}].
-spec unknown_callback(ct_suite:ct_config()) -> term().
unknown_callback(_) ->
    ?assertEqual({ok, [<<"UnknownCallbackError">>, <<"error">>,
                       {<<"unknown_callback">>, <<"nope">>}, false]},
                 py_event_loop:run(?I, call_error, [nope])),
    {error, {python, <<"UnknownCallbackError">>, Msg, _}} =
        py_event_loop:run(?I, call, [nope]),
    ?assertMatch({_, _}, binary:match(Msg, <<"nope">>)).

-spec unregister() -> [{doc, string()}].
unregister() -> [{doc, "After unregister/1 the name is unknown again."}].
-spec unregister(ct_suite:ct_config()) -> term().
unregister(_) ->
    ok = py_callback:register(gone, fun(_) -> here end),
    ?assertEqual({ok, <<"here">>}, py_event_loop:run(?I, call, [gone])),
    ok = py_callback:unregister(gone),
    ?assertMatch({ok, [<<"UnknownCallbackError">> | _]},
                 py_event_loop:run(?I, call_error, [gone])),
    ?assertEqual(ok, py_callback:unregister(gone)).

-spec error_classes() -> [{doc, string()}].
error_classes() -> [{doc, "error, exit and throw in a callback raise erlang.CallError carrying the class, the reason and Erlang's formatted stack trace."}].
-spec error_classes(ct_suite:ct_config()) -> term().
error_classes(_) ->
    ok = py_callback:register(err, fun(_) -> error(badarith) end),
    ok = py_callback:register(ex, fun(_) -> exit({shutdown, 1}) end),
    ok = py_callback:register(thr, fun(_) -> throw({my, <<"thing">>}) end),
    ?assertEqual({ok, [<<"CallError">>, <<"error">>, <<"badarith">>, true]},
                 py_event_loop:run(?I, call_error, [err])),
    ?assertEqual({ok, [<<"CallError">>, <<"exit">>, {<<"shutdown">>, 1}, true]},
                 py_event_loop:run(?I, call_error, [ex])),
    ?assertEqual({ok, [<<"CallError">>, <<"throw">>, {<<"my">>, <<"thing">>}, true]},
                 py_event_loop:run(?I, call_error, [thr])),
    %% Not caught in Python: the task fails with the CallError.
    {error, {python, <<"CallError">>, Msg, _}} = py_event_loop:run(?I, call, [err]),
    ?assertMatch({_, _}, binary:match(Msg, <<"badarith">>)).

-spec unconvertible_reason_is_text() -> [{doc, string()}].
unconvertible_reason_is_text() -> [{doc, "A reason with no Python form (a fun) arrives as its printed text, still as a CallError."}].
-spec unconvertible_reason_is_text(ct_suite:ct_config()) -> term().
unconvertible_reason_is_text(_) ->
    ok = py_callback:register(funny, fun(_) -> error({fun_inside, fun() -> ok end}) end),
    {ok, [<<"CallError">>, <<"error">>, Text, true]} =
        py_event_loop:run(?I, call_error, [funny]),
    ?assert(is_binary(Text)),
    ?assertMatch({_, _}, binary:match(Text, <<"fun_inside">>)).

-spec unconvertible_result() -> [{doc, string()}].
unconvertible_result() -> [{doc, "A result with no Python form raises TypeError in Python; the port goes on."}].
-spec unconvertible_result(ct_suite:ct_config()) -> term().
unconvertible_result(_) ->
    ok = py_callback:register(fun_result, fun(_) -> fun() -> ok end end),
    {ok, [<<"TypeError">>, Msg]} = py_event_loop:run(?I, call_error, [fun_result]),
    ?assertMatch({_, _}, binary:match(Msg, <<"fun_result">>)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec killed_callback() -> [{doc, string()}].
killed_callback() -> [{doc, "A callback process that is killed still answers Python: CallError exit:killed."}].
-spec killed_callback(ct_suite:ct_config()) -> term().
killed_callback(_) ->
    ok = py_callback:register(suicide, fun(_) -> exit(self(), kill) end),
    ?assertEqual({ok, [<<"CallError">>, <<"exit">>, <<"killed">>, true]},
                 py_event_loop:run(?I, call_error, [suicide])).

-spec async_call() -> [{doc, string()}].
async_call() -> [{doc, "await erlang.async_call returns the callback's result."}].
-spec async_call(ct_suite:ct_config()) -> term().
async_call(_) ->
    ok = py_callback:register(double, fun([X]) -> X * 2 end),
    ?assertEqual({ok, 8}, py_event_loop:run(?I, async_call, [double, 4])).

-spec async_call_error() -> [{doc, string()}].
async_call_error() -> [{doc, "An Erlang exception raises CallError from await erlang.async_call too."}].
-spec async_call_error(ct_suite:ct_config()) -> term().
async_call_error(_) ->
    ok = py_callback:register(thr, fun(_) -> throw(nope) end),
    ?assertEqual({ok, [<<"CallError">>, <<"throw">>, <<"nope">>]},
                 py_event_loop:run(?I, async_call_error, [thr])).

-spec many_async_calls() -> [{doc, string()}].
many_async_calls() -> [{doc, "200 async calls gathered at once from one task all come back, each to its own awaiter."}].
-spec many_async_calls(ct_suite:ct_config()) -> term().
many_async_calls(_) ->
    ok = py_callback:register(square, fun([X]) -> X * X end),
    ?assertEqual({ok, [X * X || X <- lists:seq(0, 199)]},
                 py_event_loop:run(?I, gather_async_calls, [square, 200], ?LONG)).

-spec concurrent_callers() -> [{doc, string()}].
concurrent_callers() -> [{doc, "Many Erlang processes whose tasks call back at the same time each get their own answer."}].
-spec concurrent_callers(ct_suite:ct_config()) -> term().
concurrent_callers(_) ->
    ok = py_callback:register(double, fun([X]) -> X * 2 end),
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Self ! {self(), N, py_event_loop_pool:run(?I, call, [double, N], ?LONG)}
                       end) || N <- lists:seq(1, 40)],
    [receive {P, N, R} -> ?assertEqual({ok, 2 * N}, R) after 30000 -> ct:fail(timeout) end
     || {P, N} <- lists:zip(Pids, lists:seq(1, 40))].

%% -- slow callbacks ----------------------------------------------------------------

-spec slow_sync_callback_other_tasks_finish() -> [{doc, string()}].
slow_sync_callback_other_tasks_finish() -> [{doc, "While a blocking erlang.call waits for a slow callback, other tasks on the same loop (plain and async) start and finish."}].
-spec slow_sync_callback_other_tasks_finish(ct_suite:ct_config()) -> term().
slow_sync_callback_other_tasks_finish(_) ->
    slow_callback_case(call).

-spec slow_async_callback_other_tasks_finish() -> [{doc, string()}].
slow_async_callback_other_tasks_finish() -> [{doc, "While await erlang.async_call waits for a slow callback, other tasks on the same loop start and finish."}].
-spec slow_async_callback_other_tasks_finish(ct_suite:ct_config()) -> term().
slow_async_callback_other_tasks_finish(_) ->
    slow_callback_case(async_call).

-spec slow_callback_case(call | async_call) -> true.
slow_callback_case(How) ->
    Self = self(),
    ok = py_callback:register(slow, fun([Tag]) ->
                                            Self ! {in_callback, self()},
                                            receive release -> Tag end
                                    end),
    Caller = spawn_link(fun() ->
                                Self ! {caller, py_event_loop:run(?I, How, [slow, <<"slow">>], ?LONG)}
                        end),
    Cb = receive {in_callback, P} -> P after 10000 -> ct:fail(callback_not_called) end,
    %% The callback is stuck; the loop is not.
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertEqual({ok, <<"async">>}, py_event_loop:run(?H, sleep_then, [0.01, <<"async">>])),
    Refs = [py_event_loop:create_task(?H, identity, [N]) || N <- lists:seq(1, 50)],
    ?assertEqual([{ok, N} || N <- lists:seq(1, 50)], [py_event_loop:await(R) || R <- Refs]),
    receive {caller, Early} -> ct:fail({answered_before_release, Early}) after 0 -> ok end,
    Cb ! release,
    receive {caller, R} -> ?assertEqual({ok, <<"slow">>}, R) after 10000 -> ct:fail(no_answer) end,
    unlink(Caller).

-spec timeout_while_blocked_in_call() -> [{doc, string()}].
timeout_while_blocked_in_call() -> [{doc, "A task whose deadline passes while it waits in erlang.call returns {error, timeout}; Python stops waiting (no port kill) and the callback, nobody waiting for it, is ended."}].
-spec timeout_while_blocked_in_call(ct_suite:ct_config()) -> term().
timeout_while_blocked_in_call(_) ->
    Self = self(),
    ok = py_callback:register(hang, fun(_) ->
                                            Self ! {in_callback, self()},
                                            receive release -> late end
                                    end),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({error, timeout}, py_event_loop:run(?I, call, [hang], #{timeout => 300})),
    Cb = receive {in_callback, P} -> P after 5000 -> ct:fail(callback_not_called) end,
    %% Python answered the cancel: the cancelled entry is gone.
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              10000),
    ok = pyport_ct:wait_until(fun() -> not is_process_alive(Cb) end, 10000),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    %% The same from a coroutine making the blocking call.
    ?assertEqual({error, timeout},
                 py_event_loop:run(?I, call_in_coroutine, [hang], #{timeout => 300})),
    Cb2 = receive {in_callback, P2} -> P2 after 5000 -> ct:fail(callback_not_called) end,
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              10000),
    ok = pyport_ct:wait_until(fun() -> not is_process_alive(Cb2) end, 10000),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    ?assertEqual([], pyport_ct:mailbox()).

-spec caller_death_while_blocked_in_call() -> [{doc, string()}].
caller_death_while_blocked_in_call() -> [{doc, "When the caller of a task blocked in erlang.call dies, the task is cancelled and the port keeps running."}].
-spec caller_death_while_blocked_in_call(ct_suite:ct_config()) -> term().
caller_death_while_blocked_in_call(_) ->
    Self = self(),
    ok = py_callback:register(hang, fun(_) ->
                                            Self ! {in_callback, self()},
                                            receive release -> late end
                                    end),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    Caller = spawn(fun() -> py_event_loop:run(?I, call, [hang], ?LONG) end),
    Cb = receive {in_callback, P} -> P after 5000 -> ct:fail(callback_not_called) end,
    exit(Caller, kill),
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              10000),
    Cb ! release,
    ?assertEqual({ok, 2.0}, py_event_loop:run(math, sqrt, [4.0])),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

%% -- re-entrant chains --------------------------------------------------------------

-spec same_loop_chain() -> [{doc, string()}].
same_loop_chain() -> [{doc, "Python -> Erlang -> Python five levels deep, every level on the same loop via py_event_loop:run/5: it completes."}].
-spec same_loop_chain(ct_suite:ct_config()) -> term().
same_loop_chain(_) ->
    ok = register_down(fun(_) -> {pyport_loop, 1} end, chain),
    {ok, Result} = py_event_loop:run({pyport_loop, 1}, ?I, chain, [down, 5], ?LONG),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual([{5, OsPid}, {4, OsPid}, {3, OsPid}, {2, OsPid}, {1, OsPid},
                  {bottom, OsPid}], flatten_chain(Result)).

-spec same_loop_chain_from_coroutine() -> [{doc, string()}].
same_loop_chain_from_coroutine() -> [{doc, "The same chain where each level is a coroutine making the blocking call: it completes."}].
-spec same_loop_chain_from_coroutine(ct_suite:ct_config()) -> term().
same_loop_chain_from_coroutine(_) ->
    ok = register_down(fun(_) -> {pyport_loop, 1} end, chain_in_coroutine),
    {ok, Result} = py_event_loop:run({pyport_loop, 1}, ?I, chain_in_coroutine, [down, 4], ?LONG),
    ?assertEqual(5, length(flatten_chain(Result))).

-spec same_loop_async_chain() -> [{doc, string()}].
same_loop_async_chain() -> [{doc, "A chain of await erlang.async_call, five levels on the same loop: it completes."}].
-spec same_loop_async_chain(ct_suite:ct_config()) -> term().
same_loop_async_chain(_) ->
    ok = register_down(fun(_) -> {pyport_loop, 1} end, async_chain),
    {ok, Result} = py_event_loop:run({pyport_loop, 1}, ?I, async_chain, [down, 5], ?LONG),
    ?assertEqual([5, 4, 3, 2, 1, bottom], [D || {D, _} <- flatten_chain(Result)]).

-spec other_loops_chain() -> [{doc, string()}].
other_loops_chain() -> [{doc, "A chain that alternates between loop 1 and loop 2 at every level completes, each level in the loop it was sent to."}].
-spec other_loops_chain(ct_suite:ct_config()) -> term().
other_loops_chain(_) ->
    ok = register_down(fun(N) -> {pyport_loop, (N rem 2) + 1} end, chain),
    {ok, Result} = py_event_loop:run({pyport_loop, 1}, ?I, chain, [down, 6], ?LONG),
    #{os_pid := Os1} = pyport_ct:loop_stats(1),
    #{os_pid := Os2} = pyport_ct:loop_stats(2),
    ?assertNotEqual(Os1, Os2),
    ?assertEqual([{6, Os1}, {5, Os2}, {4, Os1}, {3, Os2}, {2, Os1}, {1, Os2},
                  {bottom, Os1}], flatten_chain(Result)).

-spec pool_chain() -> [{doc, string()}].
pool_chain() -> [{doc, "Callbacks that use py_event_loop_pool:run (whichever loop their process hashes to) complete a four-level chain."}].
-spec pool_chain(ct_suite:ct_config()) -> term().
pool_chain(_) ->
    ok = py_callback:register(down, fun([N]) ->
                                            {ok, R} = py_event_loop_pool:run(?I, chain, [down, N], ?LONG),
                                            R
                                    end),
    {ok, Result} = py_event_loop_pool:run(?I, chain, [down, 4], ?LONG),
    ?assertEqual([4, 3, 2, 1, bottom], [D || {D, _} <- flatten_chain(Result)]).

-spec ten_levels_same_loop() -> [{doc, string()}].
ten_levels_same_loop() -> [{doc, "Ten nested blocking calls on one loop complete, and the loop serves normally afterwards."}].
-spec ten_levels_same_loop(ct_suite:ct_config()) -> term().
ten_levels_same_loop(_) ->
    ok = register_down(fun(_) -> {pyport_loop, 1} end, chain),
    {ok, Result} = py_event_loop:run({pyport_loop, 1}, ?I, chain, [down, 10], ?LONG),
    ?assertEqual(11, length(flatten_chain(Result))),
    ?assertEqual({ok, 3.0}, py_event_loop:run(math, sqrt, [9.0])),
    ?assertMatch(#{restarts := 0}, pyport_ct:loop_stats(1)).

%% -- schedule ---------------------------------------------------------------------------

-spec schedule_continues_in_erlang() -> [{doc, string()}].
schedule_continues_in_erlang() -> [{doc, "A task returning erlang.schedule(name, args) gets the Erlang callback's result as its own."}].
-spec schedule_continues_in_erlang(ct_suite:ct_config()) -> term().
schedule_continues_in_erlang(_) ->
    ok = py_callback:register(<<"compute">>, fun([X]) -> X * 2 end),
    ?assertEqual({ok, 10}, py_event_loop:run(?I, schedule, [compute, 5])),
    ok = py_callback:register(<<"fail">>, fun(_) -> error(no) end),
    ?assertMatch({error, {python, <<"CallError">>, _, _}},
                 py_event_loop:run(?I, schedule, [fail])).

-spec schedule_py_with_time_slices() -> [{doc, string()}].
schedule_py_with_time_slices() -> [{doc, "Long work split with consume_time_slice and schedule_py continues across steps to the right result (10% per item: one continuation per 10 items)."}].
-spec schedule_py_with_time_slices(ct_suite:ct_config()) -> term().
schedule_py_with_time_slices(_) ->
    ?assertEqual({ok, [5050, 10]},
                 py_event_loop:run(?I, schedule_py_sum, [lists:seq(1, 100)])).

%% -- lifecycle -----------------------------------------------------------------------

-spec registry_survives_port_restart() -> [{doc, string()}].
registry_survives_port_restart() -> [{doc, "Registered callbacks stay registered when a port crashes and restarts."}].
-spec registry_survives_port_restart(ct_suite:ct_config()) -> term().
registry_survives_port_restart(_) ->
    ok = py_callback:register(double, fun([X]) -> X * 2 end),
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    ?assertMatch({error, {python_exit, _}}, py_event_loop:run(?H, exit_process, [3])),
    ok = pyport_ct:wait_until(fun() ->
                                      case pyport_ct:loop_stats(1) of
                                          #{os_pid := New} -> New =/= Old;
                                          undefined -> false
                                      end
                              end, 15000),
    ?assertEqual({ok, 6}, py_event_loop:run(?I, call, [double, 3])).

-spec register_checks_arguments() -> [{doc, string()}].
register_checks_arguments() -> [{doc, "register/2 refuses a name that is not an atom or binary and a callback that is not a fun/1 or {M, F}."}].
-spec register_checks_arguments(ct_suite:ct_config()) -> term().
register_checks_arguments(_) ->
    ?assertError({badarg, {name, "str"}}, py_callback:register("str", fun(_) -> ok end)),
    ?assertError({badarg, {callback, _}}, py_callback:register(two, fun(_, _) -> ok end)),
    ?assertError({badarg, {callback, {"m", f}}}, py_callback:register(mf, {"m", f})),
    ?assertError({badarg, {name, 1}}, py_callback:unregister(1)).

-spec registered_names() -> [{doc, string()}].
registered_names() -> [{doc, "registered/0 lists the names as binaries; lookup/1 finds a callback by atom or binary."}].
-spec registered_names(ct_suite:ct_config()) -> term().
registered_names(_) ->
    F = fun(_) -> ok end,
    ok = py_callback:register(b_name, F),
    ok = py_callback:register(<<"a_name">>, F),
    ?assertEqual([<<"a_name">>, <<"b_name">>], py_callback:registered()),
    ?assertEqual({ok, F}, py_callback:lookup(a_name)),
    ?assertEqual(error, py_callback:lookup(<<"c_name">>)).

%% -- attack (issue 23) ------------------------------------------------------------------

-spec answers_never_block_the_worker() -> [{doc, string()}].
answers_never_block_the_worker() -> [{doc, "A task that queues 100k whereis requests and then blocks in C (never reading the answers) does not suspend its loop's worker: the worker still answers, the stuck port is killed as unresponsive and an infinity caller on that loop gets python_exit."}].
-spec answers_never_block_the_worker(ct_suite:ct_config()) -> term().
answers_never_block_the_worker(_) ->
    #{os_pid := Old, worker := Worker} = pyport_ct:loop_stats(1),
    Loop1 = {pyport_loop, 1},
    Self = self(),
    Waiter = spawn_link(fun() ->
                                Self ! {self(), py_event_loop:run(Loop1, ?H, sleep_then, [600, never],
                                                                  #{timeout => infinity})}
                        end),
    Flooder = spawn_link(fun() ->
                                 Self ! {self(), py_event_loop:run(Loop1, ?A, flood_whereis_then_block,
                                                                   [100000, 600],
                                                                   #{timeout => infinity})}
                         end),
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) >= 2 end, 10000),
    %% Python is stuck in C: a task with a deadline is not answered, and
    %% its cancel is not either.
    ?assertEqual({error, timeout},
                 py_event_loop:run(Loop1, math, sqrt, [4.0], #{timeout => 1000})),
    %% The worker is not suspended on the full port: it answers (or has
    %% already killed the port and gone, which it could not do suspended).
    case catch sys:get_state(Worker, 10000) of
        {'EXIT', {timeout, _}} ->
            ct:fail({worker_suspended,
                     erlang:process_info(Worker, [status, message_queue_len,
                                                  current_stacktrace])});
        _ -> ok
    end,
    ?assertEqual({ok, 2.0}, py_event_loop:run({pyport_loop, 2}, math, sqrt, [4.0], #{})),
    [receive
         {P, Reply} -> ?assertEqual({error, {python_exit, {killed, unresponsive}}}, Reply)
     after 60000 -> ct:fail({not_answered, P})
     end || P <- [Waiter, Flooder]],
    New = pyport_ct:await_restart(1, Old),
    ?assertEqual({ok, New}, py_event_loop:run(Loop1, ?H, getpid, [], #{})),
    ok = pyport_ct_os:await_gone([Old], 10000).

-spec callbacks_per_loop_are_limited() -> [{doc, string()}].
callbacks_per_loop_are_limited() -> [{doc, "A loop runs at most max_callbacks callbacks at once: 50 async calls with a limit of 10 start 10 callback processes and nothing more; the other 40 raise erlang.CallbackLimitError naming the limit and the setting."}].
-spec callbacks_per_loop_are_limited(ct_suite:ct_config()) -> term().
callbacks_per_loop_are_limited(_) ->
    {ok, Sup} = py_pool:start_link(#{name => cb_limited, max_callbacks => 10,
                                     python_path => [pyport_ct:helpers_dir()]}),
    Self = self(),
    ok = py_callback:register(held, fun(_) ->
                                            Self ! {held, self()},
                                            receive release -> ok end
                                    end),
    Procs = erlang:system_info(process_count),
    Task = spawn_link(fun() ->
                              Self ! {self(), py_event_loop:run({pyport_loop, {cb_limited, 1}}, ?A,
                                                                gather_calls, [held, 50], ?LONG)}
                      end),
    Held = [receive {held, P} -> P after 30000 -> ct:fail(callback_not_called) end
            || _ <- lists:seq(1, 10)],
    receive {held, _} -> ct:fail(over_the_limit) after 1000 -> ok end,
    ?assertEqual(10, length(runners())),
    %% Per call a runner and the callback's own process, and nothing for
    %% the refused ones (the task's own process and some slack aside).
    ?assert(erlang:system_info(process_count) =< Procs + 2 * 10 + 5),
    [P ! release || P <- Held],
    receive
        {Task, Reply} ->
            {ok, [10, 40, <<"CallbackLimitError">>, Msg]} = Reply,
            ?assertMatch({_, _}, binary:match(Msg, <<"max_callbacks">>)),
            ?assertMatch({_, _}, binary:match(Msg, <<"10">>))
    after 30000 -> ct:fail(task_not_answered)
    end,
    ok = pyport_ct:wait_until(fun() -> runners() =:= [] end, 10000),
    stop_sup(Sup).

-spec abandoned_callbacks_end() -> [{doc, string()}].
abandoned_callbacks_end() -> [{doc, "A callback that never returns ends (its runner too) when Python gives up on it: a plain task's deadline, a coroutine's deadline, asyncio.wait_for, the caller's death."}].
-spec abandoned_callbacks_end(ct_suite:ct_config()) -> term().
abandoned_callbacks_end(_) ->
    Self = self(),
    ok = register_forever(Self),
    ?assertEqual([], runners()),
    ?assertEqual({error, timeout}, py_event_loop:run(?A, call, [forever], #{timeout => 300})),
    ?assertEqual({error, timeout}, py_event_loop:run(?A, async_call, [forever], #{timeout => 300})),
    ?assertEqual({ok, <<"gave_up">>},
                 py_event_loop:run(?A, async_call_wait_for, [forever, 0.3], ?LONG)),
    Caller = spawn(fun() -> py_event_loop:run(?A, async_call, [forever], ?LONG) end),
    Cbs = in_callbacks(4),
    exit(Caller, kill),
    ok = pyport_ct:wait_until(
           fun() -> runners() =:= [] andalso not lists:any(fun is_process_alive/1, Cbs) end,
           10000),
    ?assertEqual({ok, 2.0}, py_event_loop:run(math, sqrt, [4.0])).

-spec callbacks_end_with_restart_loop() -> [{doc, string()}].
callbacks_end_with_restart_loop() -> [{doc, "Callbacks that never return end with their loop's restart_loop, and their callers are answered."}].
-spec callbacks_end_with_restart_loop(ct_suite:ct_config()) -> term().
callbacks_end_with_restart_loop(_) ->
    pending_callbacks_end(fun(_OsPid) -> ok = py_event_loop_pool:restart_loop({pyport_loop, 1}) end).

-spec callbacks_end_with_port_exit() -> [{doc, string()}].
callbacks_end_with_port_exit() -> [{doc, "Callbacks that never return end when their port dies (kill -9), and their callers get python_exit."}].
-spec callbacks_end_with_port_exit(ct_suite:ct_config()) -> term().
callbacks_end_with_port_exit(_) ->
    pending_callbacks_end(fun(OsPid) -> os:cmd("kill -9 " ++ integer_to_list(OsPid)) end).

-spec send_to_stopped_node_never_blocks() -> [{doc, string()}].
send_to_stopped_node_never_blocks() -> [{doc, "erlang.send to a name on a connected node that is stopped (SIGSTOP) never suspends the worker: once the distribution buffer is full the sends raise ProcessError (busy), and a bystander task on the loop is answered."}].
-spec send_to_stopped_node_never_blocks(ct_suite:ct_config()) -> term().
send_to_stopped_node_never_blocks(_) ->
    Dynamic = distribution(),
    {ok, Peer, Node} = peer:start(#{name => peer:random_name()}),
    OsPid = erpc:call(Node, os, getpid, []),
    Sink = erpc:call(Node, erlang, spawn, [timer, sleep, [infinity]]),
    true = erpc:call(Node, erlang, register, [py_ct_sink, Sink]),
    Self = self(),
    try
        _ = os:cmd("kill -STOP " ++ OsPid),
        Flooder = spawn_link(fun() ->
                                     Self ! {self(), py_event_loop:run(
                                                       {pyport_loop, 1}, ?A, send_flood,
                                                       [atom_to_binary(Node), <<"py_ct_sink">>,
                                                        1 bsl 20, 64], ?LONG)}
                             end),
        receive
            {Flooder, {ok, [Sent, Refused, First]}} ->
                ?assert(Sent >= 1),
                ?assert(Refused >= 1),
                ?assertMatch({_, _}, binary:match(First, <<"busy">>));
            {Flooder, Other} ->
                ct:fail({flood, Other})
        after 20000 -> ct:fail(send_blocked)
        end,
        ?assertEqual({ok, 2.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [4.0],
                                                  #{timeout => 10000}))
    after
        _ = os:cmd("kill -CONT " ++ OsPid),
        _ = (catch peer:stop(Peer)),
        case Dynamic of
            true -> ok = net_kernel:stop();
            false -> ok
        end
    end.

%% -- helpers -----------------------------------------------------------------------------

%% `down(N)` runs Func(down, N) on the loop LoopOf(N) picks.
-spec register_down(fun((non_neg_integer()) -> py_event_loop:loop()), atom()) -> ok.
register_down(LoopOf, Func) ->
    py_callback:register(down, fun([N]) ->
                                       {ok, R} = py_event_loop:run(LoopOf(N), ?I, Func,
                                                                   [down, N], ?LONG),
                                       R
                               end).

%% [Depth, OsPid, Below] ... [bottom, OsPid] -> [{Depth, OsPid}, ..., {bottom, OsPid}]
-spec flatten_chain(list()) -> [{integer() | atom(), integer()}].
flatten_chain([<<"bottom">>, OsPid]) -> [{bottom, OsPid}];
flatten_chain([Depth, OsPid, Below]) -> [{Depth, OsPid} | flatten_chain(Below)].

%% The processes that run Python's calls (py_callback:run, one per call).
-spec runners() -> [pid()].
runners() ->
    [P || P <- processes(),
          case erlang:process_info(P, initial_call) of
              {initial_call, {py_callback, run, _}} -> true;
              _ -> false
          end].

%% `forever`: a callback that tells Self it runs, then never returns.
-spec register_forever(pid()) -> ok.
register_forever(Self) ->
    py_callback:register(forever, fun(_) ->
                                          Self ! {in_callback, self()},
                                          receive after infinity -> ok end
                                  end).

-spec in_callbacks(non_neg_integer()) -> [pid()].
in_callbacks(N) ->
    [receive {in_callback, P} -> P after 10000 -> ct:fail(callback_not_called) end
     || _ <- lists:seq(1, N)].

%% Callers on loop 1 whose tasks wait in callbacks that never return;
%% End(OsPid) ends the port; every callback and runner must end and every
%% caller be answered.
-spec pending_callbacks_end(fun((integer()) -> term())) -> ok.
pending_callbacks_end(End) ->
    Self = self(),
    ok = register_forever(Self),
    #{os_pid := Old} = pyport_ct:loop_stats(1),
    Callers = [spawn_link(fun() ->
                                  Self ! {self(), py_event_loop:run({pyport_loop, 1}, ?A, How,
                                                                    [forever], ?LONG)}
                          end) || How <- [call, async_call, async_call, async_call]],
    Cbs = in_callbacks(4),
    ?assertEqual(4, length(runners())),
    _ = End(Old),
    [receive {C, Reply} -> ?assertMatch({error, _}, Reply) after 30000 -> ct:fail(not_answered) end
     || C <- Callers],
    ok = pyport_ct:wait_until(
           fun() -> runners() =:= [] andalso not lists:any(fun is_process_alive/1, Cbs) end,
           10000),
    _ = pyport_ct:await_restart(1, Old),
    ?assertEqual({ok, 2.0}, py_event_loop:run({pyport_loop, 1}, math, sqrt, [4.0], #{})),
    ok.

%% Starts distribution unless the node has it; true when started here.
-spec distribution() -> boolean().
distribution() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start(list_to_atom("py_callback_ct_" ++ os:getpid()),
                                       #{name_domain => shortnames}),
            true;
        _ ->
            false
    end.

-spec stop_sup(pid()) -> ok.
stop_sup(Sup) ->
    unlink(Sup),
    MRef = erlang:monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', MRef, _, _, _} -> ok after 15000 -> ct:fail(sup_not_stopped) end.
