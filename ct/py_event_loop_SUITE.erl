%% The task API end to end: Erlang -> port -> Python -> Erlang.
-module(py_event_loop_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(H, pyport_ct_helpers).
-define(NUM_LOOPS, 2).

-spec all() -> [{group, atom()}].
all() ->
    [{group, api}, {group, pool}, {group, load}, {group, limits}].

-spec groups() -> [{atom(), list(), [atom()]}].
groups() ->
    [{api, [],
      [run_3, run_4_kwargs, run_4_timeout_in_time, run_4_timeout_expires,
       run_4_timeout_infinity, run_4_binary_names, run_sync_result,
       create_task_3_await_1, create_task_4_kwargs, await_2_infinity,
       await_2_timeout_cancels, await_twice, await_in_another_process,
       spawn_task_3, spawn_task_4_kwargs, spawn_task_failure_is_logged,
       async_sleep, python_exception, async_python_exception,
       unknown_module, unknown_function, unencodable_result,
       bad_arguments, ordering_sync, ordering_async]},
     {pool, [],
      [pool_sqrt, pool_create_task_await, pool_spawn_task, pool_affinity,
       get_loop, explicit_loop_api, get_stats, get_stats_counts_pending]},
     {load, [],
      [concurrent_callers, ten_thousand_tasks]},
     {limits, [],
      [max_pending_overloaded]}].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec init_per_group(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_group(limits, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {max_pending, 3}]),
    Config;
init_per_group(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
    Config.

-spec end_per_group(atom(), ct_suite:ct_config()) -> ok.
end_per_group(_, _Config) ->
    pyport_ct:stop().

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(_, Config) ->
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    pyport_ct:release_logs().

%% api

-spec run_3() -> [{doc, string()}].
run_3() -> [{doc, "run/3 calls a Python function and returns {ok, Result}."}].
-spec run_3(ct_suite:ct_config()) -> term().
run_3(_) ->
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec run_4_kwargs() -> [{doc, string()}].
run_4_kwargs() -> [{doc, "run/4 passes the kwargs option as Python keyword arguments."}].
-spec run_4_kwargs(ct_suite:ct_config()) -> term().
run_4_kwargs(_) ->
    ?assertEqual({ok, [[1, <<"a">>], #{<<"b">> => 2, <<"c">> => <<"x">>}]},
                 py_event_loop:run(?H, echo_args, [1, <<"a">>],
                                   #{kwargs => #{b => 2, <<"c">> => <<"x">>}})),
    ?assertEqual({ok, <<"kw">>},
                 py_event_loop:run(?H, sleep_kw, [0.01],
                                   #{kwargs => #{value => <<"kw">>},
                                     timeout => 5000})).

-spec run_4_timeout_in_time() -> [{doc, string()}].
run_4_timeout_in_time() -> [{doc, "A task that ends before its timeout returns its result."}].
-spec run_4_timeout_in_time(ct_suite:ct_config()) -> term().
run_4_timeout_in_time(_) ->
    ?assertEqual({ok, <<"done">>},
                 py_event_loop:run(?H, sleep_then, [0.05, <<"done">>],
                                   #{timeout => 5000})).

-spec run_4_timeout_expires() -> [{doc, string()}].
run_4_timeout_expires() -> [{doc, "A timed-out run returns {error, timeout}, the task is cancelled in Python, and no late message reaches the mailbox."}].
-spec run_4_timeout_expires(ct_suite:ct_config()) -> term().
run_4_timeout_expires(_) ->
    Key = key(),
    ?assertEqual({error, timeout},
                 py_event_loop:run(?H, watched_sleep, [Key, 0.5],
                                   #{timeout => 100})),
    ok = pyport_ct:wait_until(
           fun() -> py_event_loop:run(?H, was_cancelled, [Key]) =:= {ok, true} end,
           5000),
    %% Past the moment the task would have finished.
    timer:sleep(700),
    ?assertEqual([], pyport_ct:mailbox()).

-spec run_4_timeout_infinity() -> [{doc, string()}].
run_4_timeout_infinity() -> [{doc, "timeout => infinity waits for the result without a deadline."}].
-spec run_4_timeout_infinity(ct_suite:ct_config()) -> term().
run_4_timeout_infinity(_) ->
    ?assertEqual({ok, 7},
                 py_event_loop:run(?H, sleep_then, [0.05, 7],
                                   #{timeout => infinity})).

-spec run_4_binary_names() -> [{doc, string()}].
run_4_binary_names() -> [{doc, "Module and function may be binaries, and a dotted function name reaches into the module."}].
-spec run_4_binary_names(ct_suite:ct_config()) -> term().
run_4_binary_names(_) ->
    ?assertEqual({ok, 4.0}, py_event_loop:run(<<"math">>, <<"sqrt">>, [16.0], #{})),
    ?assertEqual({ok, <<"a/b">>},
                 py_event_loop:run(<<"os.path">>, join, [<<"a">>, <<"b">>])).

-spec run_sync_result() -> [{doc, string()}].
run_sync_result() -> [{doc, "A plain (non-async) function's return value comes back as is."}].
-spec run_sync_result(ct_suite:ct_config()) -> term().
run_sync_result(_) ->
    ?assertEqual({ok, 6}, py_event_loop:run(builtins, sum, [[1, 2, 3]])),
    ?assertEqual({ok, none}, py_event_loop:run(?H, remember, [key(), 1])).

-spec create_task_3_await_1() -> [{doc, string()}].
create_task_3_await_1() -> [{doc, "create_task/3 returns a reference at once; await/1 returns the result."}].
-spec create_task_3_await_1(ct_suite:ct_config()) -> term().
create_task_3_await_1(_) ->
    Ref = py_event_loop:create_task(?H, sleep_then, [0.05, <<"later">>]),
    ?assert(is_reference(Ref)),
    ?assertEqual({ok, <<"later">>}, py_event_loop:await(Ref)).

-spec create_task_4_kwargs() -> [{doc, string()}].
create_task_4_kwargs() -> [{doc, "create_task/4 passes its kwargs map as keyword arguments."}].
-spec create_task_4_kwargs(ct_suite:ct_config()) -> term().
create_task_4_kwargs(_) ->
    Ref = py_event_loop:create_task(?H, echo_args, [], #{x => 1}),
    ?assertEqual({ok, [[], #{<<"x">> => 1}]}, py_event_loop:await(Ref)),
    Ref2 = py_event_loop:create_task(?H, sleep_kw, [0.01], #{value => 3}),
    ?assertEqual({ok, 3}, py_event_loop:await(Ref2, 5000)).

-spec await_2_infinity() -> [{doc, string()}].
await_2_infinity() -> [{doc, "await/2 with infinity waits as long as the task runs."}].
-spec await_2_infinity(ct_suite:ct_config()) -> term().
await_2_infinity(_) ->
    Ref = py_event_loop:create_task(?H, sleep_then, [0.2, <<"slow">>]),
    ?assertEqual({ok, <<"slow">>}, py_event_loop:await(Ref, infinity)).

-spec await_2_timeout_cancels() -> [{doc, string()}].
await_2_timeout_cancels() -> [{doc, "await/2 timing out returns {error, timeout}, cancels the task in Python, and leaves no late message."}].
-spec await_2_timeout_cancels(ct_suite:ct_config()) -> term().
await_2_timeout_cancels(_) ->
    Key = key(),
    Ref = py_event_loop:create_task(?H, watched_sleep, [Key, 0.5]),
    ?assertEqual({error, timeout}, py_event_loop:await(Ref, 50)),
    ok = pyport_ct:wait_until(
           fun() -> py_event_loop:run(?H, was_cancelled, [Key]) =:= {ok, true} end,
           5000),
    timer:sleep(700),
    ?assertEqual([], pyport_ct:mailbox()).

-spec await_twice() -> [{doc, string()}].
await_twice() -> [{doc, "A reference can be awaited once; again gives {error, unknown_task} at once."}].
-spec await_twice(ct_suite:ct_config()) -> term().
await_twice(_) ->
    Ref = py_event_loop:create_task(math, sqrt, [4.0]),
    ?assertEqual({ok, 2.0}, py_event_loop:await(Ref)),
    ?assertEqual({error, unknown_task}, py_event_loop:await(Ref, infinity)).

-spec await_in_another_process() -> [{doc, string()}].
await_in_another_process() -> [{doc, "Only the creating process can await a task; another process gets {error, unknown_task}, not a hang."}].
-spec await_in_another_process(ct_suite:ct_config()) -> term().
await_in_another_process(_) ->
    Ref = py_event_loop:create_task(math, sqrt, [9.0]),
    Self = self(),
    spawn_link(fun() -> Self ! {other, py_event_loop:await(Ref, infinity)} end),
    receive {other, Other} -> ?assertEqual({error, unknown_task}, Other) end,
    ?assertEqual({ok, 3.0}, py_event_loop:await(Ref)).

-spec spawn_task_3() -> [{doc, string()}].
spawn_task_3() -> [{doc, "spawn_task/3 returns ok and the task runs (seen by a later task of the same process)."}].
-spec spawn_task_3(ct_suite:ct_config()) -> term().
spawn_task_3(_) ->
    Key = key(),
    ?assertEqual(ok, py_event_loop:spawn_task(?H, remember, [Key, 42])),
    ?assertEqual({ok, 42}, py_event_loop:run(?H, recall, [Key])).

-spec spawn_task_4_kwargs() -> [{doc, string()}].
spawn_task_4_kwargs() -> [{doc, "spawn_task/4 passes its kwargs map as keyword arguments."}].
-spec spawn_task_4_kwargs(ct_suite:ct_config()) -> term().
spawn_task_4_kwargs(_) ->
    Key = key(),
    ?assertEqual(ok, py_event_loop:spawn_task(?H, remember, [Key], #{value => <<"v">>})),
    ?assertEqual({ok, <<"v">>}, py_event_loop:run(?H, recall, [Key])).

-spec spawn_task_failure_is_logged() -> [{doc, string()}].
spawn_task_failure_is_logged() -> [{doc, "A failing spawned task sends no reply but is logged through the OTP logger with the loop's metadata."}].
-spec spawn_task_failure_is_logged(ct_suite:ct_config()) -> term().
spawn_task_failure_is_logged(_) ->
    ok = pyport_ct:capture_logs(),
    ?assertEqual(ok, py_event_loop:spawn_task(?H, raise_value_error, [<<"spawned boom">>])),
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"spawned boom">>) end, 5000),
    #{level := error, meta := #{pyport_loop := 1}} = Event,
    ?assertEqual([], pyport_ct:mailbox()).

-spec async_sleep() -> [{doc, string()}].
async_sleep() -> [{doc, "An async function awaiting asyncio.sleep runs as a Task and returns its value."}].
-spec async_sleep(ct_suite:ct_config()) -> term().
async_sleep(_) ->
    ?assertEqual({ok, [1, 2]}, py_event_loop:run(?H, sleep_then, [0.01, [1, 2]])),
    ?assertEqual({ok, none}, py_event_loop:run(asyncio, sleep, [0.01])).

-spec python_exception() -> [{doc, string()}].
python_exception() -> [{doc, "A Python exception becomes {error, {python, Type, Message, Traceback}}."}].
-spec python_exception(ct_suite:ct_config()) -> term().
python_exception(_) ->
    {error, {python, Type, Msg, Tb}} =
        py_event_loop:run(?H, raise_value_error, [<<"boom">>]),
    ?assertEqual({<<"ValueError">>, <<"boom">>}, {Type, Msg}),
    ?assertMatch({_, _}, binary:match(Tb, <<"Traceback">>)).

-spec async_python_exception() -> [{doc, string()}].
async_python_exception() -> [{doc, "An exception raised inside a coroutine is reported the same way."}].
-spec async_python_exception(ct_suite:ct_config()) -> term().
async_python_exception(_) ->
    ?assertMatch({error, {python, <<"ValueError">>, <<"late boom">>, _}},
                 py_event_loop:run(?H, raise_later, [<<"late boom">>])).

-spec unknown_module() -> [{doc, string()}].
unknown_module() -> [{doc, "An unknown module is a ModuleNotFoundError naming it, not a crash."}].
-spec unknown_module(ct_suite:ct_config()) -> term().
unknown_module(_) ->
    {error, {python, Type, Msg, _}} =
        py_event_loop:run(no_such_module_pyport, f, []),
    ?assertEqual(<<"ModuleNotFoundError">>, Type),
    ?assertMatch({_, _}, binary:match(Msg, <<"no_such_module_pyport">>)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec unknown_function() -> [{doc, string()}].
unknown_function() -> [{doc, "An unknown function is an AttributeError naming it."}].
-spec unknown_function(ct_suite:ct_config()) -> term().
unknown_function(_) ->
    {error, {python, Type, Msg, _}} = py_event_loop:run(math, no_such_func, [1]),
    ?assertEqual(<<"AttributeError">>, Type),
    ?assertMatch({_, _}, binary:match(Msg, <<"no_such_func">>)).

-spec unencodable_result() -> [{doc, string()}].
unencodable_result() -> [{doc, "A result with no Erlang form is {error, {python, <<\"TypeError\">>, Msg, _}} naming the type."}].
-spec unencodable_result(ct_suite:ct_config()) -> term().
unencodable_result(_) ->
    {error, {python, <<"TypeError">>, Msg, _}} = py_event_loop:run(?H, make_object, []),
    ?assertMatch({_, _}, binary:match(Msg, <<"object">>)),
    {error, {python, <<"TypeError">>, Msg2, _}} = py_event_loop:run(?H, make_set, []),
    ?assertMatch({_, _}, binary:match(Msg2, <<"set">>)),
    ?assertEqual({ok, 4.0}, py_event_loop:run(math, sqrt, [16.0])).

-spec bad_arguments() -> [{doc, string()}].
bad_arguments() -> [{doc, "Bad arguments raise at the call site and send nothing."}].
-spec bad_arguments(ct_suite:ct_config()) -> term().
bad_arguments(_) ->
    ?assertError({badarg, {args, 16.0}}, py_event_loop:run(math, sqrt, 16.0)),
    %% A keyword list is kwargs (docs/elixir.md); other lists are not.
    ?assertError({badarg, {kwargs, [{"a", 1}]}},
                 py_event_loop:create_task(math, sqrt, [], [{"a", 1}])),
    ?assertError({badarg, {module, "math"}}, py_event_loop:spawn_task("math", sqrt, [])),
    ?assertError({badarg, {function, 1}}, py_event_loop:run(math, 1, [])),
    ?assertError({badarg, {timeout, -5}},
                 py_event_loop:run(math, sqrt, [1.0], #{timeout => -5})),
    ?assertError({badarg, {option, tiemout, 5}},
                 py_event_loop:run(math, sqrt, [1.0], #{tiemout => 5})),
    ?assertEqual(0, maps:get(pending, py_event_loop_pool:get_stats())).

-spec ordering_sync() -> [{doc, string()}].
ordering_sync() -> [{doc, "One process's plain tasks run in submission order."}].
-spec ordering_sync(ct_suite:ct_config()) -> term().
ordering_sync(_) ->
    Key = key(),
    N = 500,
    Refs = [py_event_loop:create_task(?H, append, [Key, I]) || I <- lists:seq(1, N)],
    [{ok, I} = py_event_loop:await(R) || {I, R} <- lists:zip(lists:seq(1, N), Refs)],
    ?assertEqual({ok, lists:seq(1, N)}, py_event_loop:run(?H, sequence, [Key])).

-spec ordering_async() -> [{doc, string()}].
ordering_async() -> [{doc, "One process's async tasks start in submission order."}].
-spec ordering_async(ct_suite:ct_config()) -> term().
ordering_async(_) ->
    Key = key(),
    N = 500,
    ok = lists:foreach(fun(I) -> ok = py_event_loop:spawn_task(?H, append_async, [Key, I]) end,
                       lists:seq(1, N div 2)),
    Refs = [py_event_loop:create_task(?H, append_async, [Key, I])
            || I <- lists:seq(N div 2 + 1, N)],
    [{ok, _} = py_event_loop:await(R) || R <- Refs],
    ?assertEqual({ok, lists:seq(1, N)}, py_event_loop:run(?H, sequence, [Key])).

%% pool

-spec pool_sqrt() -> [{doc, string()}].
pool_sqrt() -> [{doc, "py_event_loop_pool:run(math, sqrt, [16.0]) returns {ok, 4.0}."}].
-spec pool_sqrt(ct_suite:ct_config()) -> term().
pool_sqrt(_) ->
    ?assertEqual({ok, 4.0}, py_event_loop_pool:run(math, sqrt, [16.0])),
    ?assertEqual({ok, 4.0}, py_event_loop_pool:run(math, sqrt, [16.0], #{timeout => 1000})).

-spec pool_create_task_await() -> [{doc, string()}].
pool_create_task_await() -> [{doc, "The pool's create_task/3,4 and await/1,2 work like py_event_loop's."}].
-spec pool_create_task_await(ct_suite:ct_config()) -> term().
pool_create_task_await(_) ->
    Ref = py_event_loop_pool:create_task(math, sqrt, [16.0]),
    ?assertEqual({ok, 4.0}, py_event_loop_pool:await(Ref)),
    Ref2 = py_event_loop_pool:create_task(?H, echo_args, [], #{k => 1}),
    ?assertEqual({ok, [[], #{<<"k">> => 1}]}, py_event_loop_pool:await(Ref2, infinity)),
    Ref3 = py_event_loop_pool:create_task(?H, sleep_then, [1.0, x]),
    ?assertEqual({error, timeout}, py_event_loop_pool:await(Ref3, 10)).

-spec pool_spawn_task() -> [{doc, string()}].
pool_spawn_task() -> [{doc, "The pool's spawn_task/3,4 run on the caller's loop, before its next task."}].
-spec pool_spawn_task(ct_suite:ct_config()) -> term().
pool_spawn_task(_) ->
    Key = key(),
    ?assertEqual(ok, py_event_loop_pool:spawn_task(?H, remember, [Key, 1])),
    ?assertEqual({ok, 1}, py_event_loop_pool:run(?H, recall, [Key])),
    ?assertEqual(ok, py_event_loop_pool:spawn_task(?H, remember, [Key], #{value => 2})),
    ?assertEqual({ok, 2}, py_event_loop_pool:run(?H, recall, [Key])).

-spec pool_affinity() -> [{doc, string()}].
pool_affinity() -> [{doc, "A process's pool tasks all run on the loop its PID hashes to; other processes spread over the loops."}].
-spec pool_affinity(ct_suite:ct_config()) -> term().
pool_affinity(_) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               {ok, OsPid} = py_event_loop_pool:run(?H, getpid, []),
                               Again = [py_event_loop_pool:run(?H, getpid, [])
                                        || _ <- lists:seq(1, 5)],
                               Self ! {self(), OsPid, Again}
                       end) || _ <- lists:seq(1, 20)],
    Seen = [receive
                {P, OsPid, Again} ->
                    ?assertEqual(lists:duplicate(5, {ok, OsPid}), Again),
                    Index = erlang:phash2(P, ?NUM_LOOPS) + 1,
                    #{os_pid := Expected} = pyport_ct:loop_stats(Index),
                    ?assertEqual(Expected, OsPid),
                    OsPid
            end || P <- Pids],
    ?assertEqual(?NUM_LOOPS, length(lists:usort(Seen))).

-spec get_loop() -> [{doc, string()}].
get_loop() -> [{doc, "get_loop/0 returns the caller's loop, the same one every time."}].
-spec get_loop(ct_suite:ct_config()) -> term().
get_loop(_) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    ?assertEqual({ok, Loop}, py_event_loop_pool:get_loop()),
    ?assertEqual({pyport_loop, erlang:phash2(self(), ?NUM_LOOPS) + 1}, Loop).

-spec explicit_loop_api() -> [{doc, string()}].
explicit_loop_api() -> [{doc, "run/5, create_task/5 and spawn_task/5 run on the loop given, whichever process calls."}].
-spec explicit_loop_api(ct_suite:ct_config()) -> term().
explicit_loop_api(_) ->
    [#{index := 1, os_pid := Os1}, #{index := 2, os_pid := Os2}] =
        maps:get(loops, py_event_loop_pool:get_stats()),
    ?assertEqual({ok, Os1}, py_event_loop:run({pyport_loop, 1}, ?H, getpid, [], #{})),
    ?assertEqual({ok, Os2}, py_event_loop:run({pyport_loop, 2}, ?H, getpid, [], #{})),
    Ref = py_event_loop:create_task({pyport_loop, 2}, ?H, echo_args, [], #{a => 1}),
    ?assertEqual({ok, [[], #{<<"a">> => 1}]}, py_event_loop:await(Ref)),
    Key = key(),
    ?assertEqual(ok, py_event_loop:spawn_task({pyport_loop, 2}, ?H, remember, [Key], #{value => 5})),
    ?assertEqual({ok, 5}, py_event_loop:run({pyport_loop, 2}, ?H, recall, [Key], #{})),
    ?assertEqual({error, loop_unavailable},
                 py_event_loop:run({pyport_loop, ?NUM_LOOPS + 1}, math, sqrt, [1.0], #{})).

-spec get_stats() -> [{doc, string()}].
get_stats() -> [{doc, "get_stats/0 describes every loop: index, OS pid, Python version, pending tasks."}].
-spec get_stats(ct_suite:ct_config()) -> term().
get_stats(_) ->
    Stats = py_event_loop_pool:get_stats(),
    ?assertMatch(#{num_loops := ?NUM_LOOPS, supported := true, restarts := 0,
                   pending := 0}, Stats),
    Loops = maps:get(loops, Stats),
    ?assertEqual(lists:seq(1, ?NUM_LOOPS), [I || #{index := I} <- Loops]),
    [begin
         ?assert(is_integer(OsPid)),
         ?assert(pyport_ct:os_pid_alive(OsPid)),
         ?assert(is_binary(Py)),
         ?assert(is_pid(W)),
         ?assert(is_port(P))
     end || #{os_pid := OsPid, python := Py, worker := W, port := P,
              pending := 0, restarts := 0} <- Loops],
    ?assertEqual(?NUM_LOOPS, length(lists:usort([O || #{os_pid := O} <- Loops]))).

-spec get_stats_counts_pending() -> [{doc, string()}].
get_stats_counts_pending() -> [{doc, "get_stats/0 counts tasks awaiting their result, and forgets them once answered."}].
-spec get_stats_counts_pending(ct_suite:ct_config()) -> term().
get_stats_counts_pending(_) ->
    Refs = [py_event_loop:create_task(?H, sleep_then, [0.3, I]) || I <- lists:seq(1, 3)],
    #{pending := 3, loops := Loops} = py_event_loop_pool:get_stats(),
    ?assertMatch([#{index := 1, pending := 3} | _], Loops),
    [{ok, _} = py_event_loop:await(R) || R <- Refs],
    ?assertMatch(#{pending := 0}, py_event_loop_pool:get_stats()).

%% load

-spec concurrent_callers() -> [{doc, string()}].
concurrent_callers() -> [{doc, "50 processes calling through the pool at once each get their own correct results."}].
-spec concurrent_callers(ct_suite:ct_config()) -> term().
concurrent_callers(_) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Results = [py_event_loop_pool:run(?H, identity, [{N, I}])
                                          || I <- lists:seq(1, 50)],
                               Self ! {self(), N, Results}
                       end) || N <- lists:seq(1, 50)],
    [receive
         {P, N, Results} ->
             ?assertEqual([{ok, {N, I}} || I <- lists:seq(1, 50)], Results)
     end || P <- Pids],
    ?assertMatch(#{pending := 0}, py_event_loop_pool:get_stats()).

-spec ten_thousand_tasks() -> [{doc, string()}].
ten_thousand_tasks() -> [{doc, "10k create_task then 10k await: every result arrives, matched to its reference."}].
-spec ten_thousand_tasks(ct_suite:ct_config()) -> term().
ten_thousand_tasks(_) ->
    N = 10000,
    Refs = [py_event_loop_pool:create_task(?H, identity, [I]) || I <- lists:seq(1, N)],
    Results = [py_event_loop_pool:await(R, 30000) || R <- Refs],
    ?assertEqual([{ok, I} || I <- lists:seq(1, N)], Results),
    ?assertEqual([], pyport_ct:mailbox()),
    ?assertMatch(#{pending := 0}, py_event_loop_pool:get_stats()).

%% limits

-spec max_pending_overloaded() -> [{doc, string()}].
max_pending_overloaded() -> [{doc, "With max_pending set, a loop that many tasks behind refuses more with {error, overloaded} until they finish."}].
-spec max_pending_overloaded(ct_suite:ct_config()) -> term().
max_pending_overloaded(_) ->
    Refs = [py_event_loop:create_task(?H, sleep_then, [0.3, I]) || I <- lists:seq(1, 3)],
    ?assertEqual({error, overloaded}, py_event_loop:run(math, sqrt, [4.0])),
    Over = py_event_loop:create_task(math, sqrt, [4.0]),
    ?assertEqual({error, overloaded}, py_event_loop:await(Over)),
    ?assertEqual([{ok, 1}, {ok, 2}, {ok, 3}], [py_event_loop:await(R) || R <- Refs]),
    ?assertEqual({ok, 2.0}, py_event_loop:run(math, sqrt, [4.0])).

%% Internal.

-spec key() -> binary().
key() ->
    list_to_binary(io_lib:format("~p-~p", [erlang:unique_integer([positive]), self()])).
