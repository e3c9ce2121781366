%% py_event_loop:exec/eval and the pool equivalents: source text run in a
%% loop's __main__ namespace.
-module(py_exec_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(I, pyport_interop_helpers).

-spec all() -> [atom()].
all() ->
    [exec_defines_eval_reads, exec_function_is_a_task_target, eval_errors,
     exec_errors, source_as_string_and_unicode, eval_unconvertible_result,
     loop_handles, pool_exec_eval, exec_calls_back_into_erlang,
     eval_timeout_while_blocked_in_call, bad_arguments,
     runaway_exec_eval_are_interrupted].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 2}]),
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    [ok = py_callback:unregister(Name) || Name <- py_callback:registered()],
    ok.

-spec exec_defines_eval_reads() -> [{doc, string()}].
exec_defines_eval_reads() -> [{doc, "exec/1 runs statements in __main__ and returns ok; eval/1 evaluates an expression there and returns {ok, Value}."}].
-spec exec_defines_eval_reads(ct_suite:ct_config()) -> term().
exec_defines_eval_reads(_) ->
    ?assertEqual(ok, py_event_loop:exec(<<"import math\nx = 6 * 7\ndef sq(v):\n    return v * v\n">>)),
    ?assertEqual({ok, 42}, py_event_loop:eval(<<"x">>)),
    ?assertEqual({ok, 49}, py_event_loop:eval(<<"sq(7)">>)),
    ?assertEqual({ok, [1, <<"a">>, none]}, py_event_loop:eval(<<"[1, 'a', None]">>)).

-spec exec_function_is_a_task_target() -> [{doc, string()}].
exec_function_is_a_task_target() -> [{doc, "A function defined by exec is callable as a task on module '__main__', sync or async."}].
-spec exec_function_is_a_task_target(ct_suite:ct_config()) -> term().
exec_function_is_a_task_target(_) ->
    ok = py_event_loop:exec(<<"import asyncio\n"
                              "def triple(v):\n    return 3 * v\n"
                              "async def later(v):\n    await asyncio.sleep(0.01)\n    return v\n">>),
    ?assertEqual({ok, 12}, py_event_loop:run('__main__', triple, [4])),
    ?assertEqual({ok, <<"done">>}, py_event_loop:run('__main__', later, [<<"done">>])).

-spec eval_errors() -> [{doc, string()}].
eval_errors() -> [{doc, "eval errors come back as {error, {python, Type, Message, Traceback}}: NameError, SyntaxError, ZeroDivisionError."}].
-spec eval_errors(ct_suite:ct_config()) -> term().
eval_errors(_) ->
    {error, {python, <<"NameError">>, Msg, Tb}} = py_event_loop:eval(<<"no_such_name_here">>),
    ?assertMatch({_, _}, binary:match(Msg, <<"no_such_name_here">>)),
    ?assertMatch({_, _}, binary:match(Tb, <<"Traceback">>)),
    ?assertMatch({error, {python, <<"SyntaxError">>, _, _}}, py_event_loop:eval(<<"1 +">>)),
    ?assertMatch({error, {python, <<"SyntaxError">>, _, _}}, py_event_loop:eval(<<"x = 1">>)),
    ?assertMatch({error, {python, <<"ZeroDivisionError">>, _, _}}, py_event_loop:eval(<<"1/0">>)),
    ?assertEqual({ok, 2}, py_event_loop:eval(<<"1 + 1">>)).

-spec exec_errors() -> [{doc, string()}].
exec_errors() -> [{doc, "exec errors come back as {error, {python, ...}}; statements before the error have run."}].
-spec exec_errors(ct_suite:ct_config()) -> term().
exec_errors(_) ->
    ?assertMatch({error, {python, <<"ValueError">>, <<"bad">>, _}},
                 py_event_loop:exec(<<"before_error = 1\nraise ValueError('bad')\n">>)),
    ?assertEqual({ok, 1}, py_event_loop:eval(<<"before_error">>)),
    ?assertMatch({error, {python, <<"IndentationError">>, _, _}},
                 py_event_loop:exec(<<"  x = 1\n">>)).

-spec source_as_string_and_unicode() -> [{doc, string()}].
source_as_string_and_unicode() -> [{doc, "Source may be a string or iolist, and non-ASCII text survives."}].
-spec source_as_string_and_unicode(ct_suite:ct_config()) -> term().
source_as_string_and_unicode(_) ->
    ?assertEqual(ok, py_event_loop:exec("greeting = 'h\x{e9}llo \x{4e16}\x{754c}'")),
    ?assertEqual({ok, <<"héllo 世界"/utf8>>}, py_event_loop:eval([<<"greet">>, "ing"])).

-spec eval_unconvertible_result() -> [{doc, string()}].
eval_unconvertible_result() -> [{doc, "An eval result outside the type table is a TypeError naming the type."}].
-spec eval_unconvertible_result(ct_suite:ct_config()) -> term().
eval_unconvertible_result(_) ->
    {error, {python, <<"TypeError">>, Msg, _}} = py_event_loop:eval(<<"object()">>),
    ?assertMatch({_, _}, binary:match(Msg, <<"object">>)).

-spec loop_handles() -> [{doc, string()}].
loop_handles() -> [{doc, "exec/2,3 and eval/2,3 take a loop handle: each loop has its own __main__."}].
-spec loop_handles(ct_suite:ct_config()) -> term().
loop_handles(_) ->
    ok = py_event_loop:exec({pyport_loop, 1}, <<"where = 'one'">>),
    ok = py_event_loop:exec({pyport_loop, 2}, <<"where = 'two'">>, #{timeout => 5000}),
    ?assertEqual({ok, <<"one">>}, py_event_loop:eval({pyport_loop, 1}, <<"where">>)),
    ?assertEqual({ok, <<"two">>}, py_event_loop:eval({pyport_loop, 2}, <<"where">>, #{timeout => infinity})).

-spec pool_exec_eval() -> [{doc, string()}].
pool_exec_eval() -> [{doc, "py_event_loop_pool:exec/eval run on the caller's loop, the one its tasks use."}].
-spec pool_exec_eval(ct_suite:ct_config()) -> term().
pool_exec_eval(_) ->
    ok = py_event_loop_pool:exec(<<"import os\npool_pid = os.getpid()">>),
    {ok, OsPid} = py_event_loop_pool:eval(<<"pool_pid">>, #{timeout => 5000}),
    ?assertEqual({ok, OsPid}, py_event_loop_pool:run(os, getpid, [])),
    {ok, {pyport_loop, I}} = py_event_loop_pool:get_loop(),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(I)),
    ?assertEqual(ok, py_event_loop_pool:exec(<<"pass">>, #{})).

-spec exec_calls_back_into_erlang() -> [{doc, string()}].
exec_calls_back_into_erlang() -> [{doc, "Code run by exec/eval can use erlang.call and erlang.send; erlang.self() is the calling process."}].
-spec exec_calls_back_into_erlang(ct_suite:ct_config()) -> term().
exec_calls_back_into_erlang(_) ->
    ok = py_callback:register(add, fun([A, B]) -> A + B end),
    ?assertEqual({ok, 5}, py_event_loop:eval(<<"__import__('erlang').call('add', 2, 3)">>)),
    ?assertEqual(ok, py_event_loop:exec(<<"import erlang\nerlang.send(erlang.self(), 'from exec')">>)),
    receive Msg -> ?assertEqual(<<"from exec">>, Msg) after 5000 -> ct:fail(no_message) end.

-spec eval_timeout_while_blocked_in_call() -> [{doc, string()}].
eval_timeout_while_blocked_in_call() -> [{doc, "An eval that times out while waiting in erlang.call gives {error, timeout}; Python stops waiting and the loop serves on."}].
-spec eval_timeout_while_blocked_in_call(ct_suite:ct_config()) -> term().
eval_timeout_while_blocked_in_call(_) ->
    Self = self(),
    ok = py_callback:register(hang, fun(_) -> Self ! {in_callback, self()},
                                              receive release -> ok end
                                    end),
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    ?assertEqual({error, timeout},
                 py_event_loop:eval({pyport_loop, 1}, <<"__import__('erlang').call('hang')">>,
                                    #{timeout => 200})),
    Cb = receive {in_callback, P} -> P after 5000 -> ct:fail(no_callback) end,
    ok = pyport_ct:wait_until(fun() -> maps:get(pending, pyport_ct:loop_stats(1)) =:= 0 end,
                              10000),
    Cb ! release,
    ?assertEqual({ok, 1}, py_event_loop:eval(<<"1">>)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)).

-spec bad_arguments() -> [{doc, string()}].
bad_arguments() -> [{doc, "Bad source, options or loop handles raise badarg at the call site."}].
-spec bad_arguments(ct_suite:ct_config()) -> term().
bad_arguments(_) ->
    ?assertError({badarg, {source, 42}}, py_event_loop:exec({pyport_loop, 1}, 42)),
    ?assertError({badarg, {option, retries, 1}},
                 py_event_loop:eval({pyport_loop, 1}, <<"1">>, #{retries => 1})),
    ?assertError({badarg, {options, []}}, py_event_loop:eval({pyport_loop, 1}, <<"1">>, [])),
    ?assertError({badarg, {timeout, -1}}, py_event_loop_pool:eval(<<"1">>, #{timeout => -1})),
    ?assertError({badarg, {loop, 1}}, py_event_loop:exec(1, <<"pass">>)).

-spec runaway_exec_eval_are_interrupted() -> [{doc, string()}].
runaway_exec_eval_are_interrupted() -> [{doc, "exec and eval of code that spins past their timeout are interrupted by the watchdog: {error, timeout}, the port is not killed and a bystander task on the same loop gets its result."}].
-spec runaway_exec_eval_are_interrupted(ct_suite:ct_config()) -> term().
runaway_exec_eval_are_interrupted(_) ->
    L1 = {pyport_loop, 1},
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    #{os_pid := OsPid2} = pyport_ct:loop_stats(2),
    Bystander = py_event_loop:create_task(L1, asyncio, sleep, [4, <<"bystander">>], #{}),
    ?assertEqual({error, timeout},
                 py_event_loop:exec(L1, <<"while True:\n    pass\n">>, #{timeout => 500})),
    ?assertEqual({error, timeout},
                 py_event_loop:eval(L1, <<"next(x for x in iter(int, 1) if x)">>, #{timeout => 500})),
    ?assertEqual({error, timeout},
                 py:eval(<<"x + sum(0 for _ in iter(int, 1))">>, #{x => 1}, 500)),
    %% Longer than cancel_grace_ms: a port left spinning would be killed.
    ?assertEqual({ok, <<"bystander">>}, py_event_loop:await(Bystander, 10000)),
    ?assertEqual({ok, 2}, py_event_loop:eval(L1, <<"1 + 1">>)),
    ?assertMatch(#{os_pid := OsPid, restarts := 0}, pyport_ct:loop_stats(1)),
    ?assertMatch(#{os_pid := OsPid2, restarts := 0}, pyport_ct:loop_stats(2)).
