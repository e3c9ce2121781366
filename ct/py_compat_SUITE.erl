%% Porting from erlang_python and Elixir's conversions (docs/porting.md,
%% docs/elixir.md): each function of the porting table through `py`, eval
%% with bindings, the async worker backend, schedule_inline,
%% attribute-style callbacks, erlang.run/asyncio.run from sync code, the
%% `none_atom` option, keyword lists as kwargs, structs, reload/1.
%% Fixtures: ct/python/pyport_compat.py.
-module(py_compat_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(F, pyport_compat).
-define(NUM_LOOPS, 2).

-spec all() -> [atom()].
all() ->
    [call_3_4_5, call_errors_keep_pyport_terms, cast_3_4_5, spawn_call_and_await,
     async_call_and_await, async_gather, eval_with_bindings, eval_1_2_3, exec_1_2,
     register_and_unregister_function, attribute_style_callbacks,
     schedule_inline_chains, schedule_inline_stays_in_one_iteration,
     run_from_sync_code, run_from_sync_code_keeps_loop_serving,
     run_from_sync_code_times_out, none_atom_per_call, none_atom_per_pool,
     bad_none_atom_config, keyword_lists_as_kwargs, structs_arrive_as_dicts,
     reload_every_loop, stream_3_4,
     %% issue 25
     context_keeps_state_per_process, context_per_loop, context_released_with_owner,
     context_lost_after_port_restart, context_limit, context_call_times_out,
     interrupt_cancels_a_spawned_task, shared_state_from_erlang_and_python,
     shared_state_survives_port_restart, shared_state_bounds,
     erlang_predefined_in_eval_and_exec, stream_start_sends_events,
     stream_start_to_another_owner, stream_cancel_stops_the_generator,
     stream_start_error_event, stream_eval_collects, call_on_a_named_pool,
     register_pool_routes_calls, memory_stats_and_gc, configure_logging_sets_level,
     venv_api, not_started_says_so, unconvertible_result_says_what_to_do,
     python_path_string_says_list, unknown_keys_warning_is_two_lines,
     tracing_maps_to_telemetry,
     porting_guide_runs].

-spec init_per_testcase(atom(), ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_testcase(none_atom_per_pool, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}, {none_atom, nil}]),
    Config;
init_per_testcase(bad_none_atom_config, Config) ->
    Config;
init_per_testcase(not_started_says_so, Config) ->
    Config;
init_per_testcase(python_path_string_says_list, Config) ->
    Config;
init_per_testcase(unknown_keys_warning_is_two_lines, Config) ->
    Config;
init_per_testcase(reload_every_loop, Config) ->
    Dir = filename:join(?config(priv_dir, Config), "reload"),
    ok = filelib:ensure_path(Dir),
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS},
                          {python_path, [pyport_ct:helpers_dir(), Dir]}]),
    [{reload_dir, Dir} | Config];
init_per_testcase(_, Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, ?NUM_LOOPS}]),
    Config.

-spec end_per_testcase(atom(), ct_suite:ct_config()) -> ok.
end_per_testcase(_, _Config) ->
    _ = py_callback:unregister(compat_add),
    _ = py_callback:unregister(compat_mf),
    _ = py_callback:unregister(compat_roundtrip),
    _ = py_callback:unregister(my_func),
    _ = py:unregister_pool(math),
    _ = py:unregister_pool({?F, echo}),
    pyport_ct:stop().

%% A callback for register_function/3.
-spec add([integer()]) -> integer().
add([A, B]) -> A + B.

%% Cases.

-spec call_3_4_5() -> [{doc, string()}].
call_3_4_5() -> [{doc, "py:call/3,4,5 run on the caller's loop or a given loop, with kwargs (map or keyword list), options and a timeout."}].
-spec call_3_4_5(ct_suite:ct_config()) -> term().
call_3_4_5(_) ->
    {ok, 4.0} = py:call(math, sqrt, [16.0]),
    {ok, [[1], #{<<"k">> := 2}]} = py:call(?F, echo, [1], #{k => 2}),
    {ok, [[], #{<<"k">> := 3}]} = py:call(?F, echo, [], [{k, 3}]),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, 2.0} = py:call(Loop, math, sqrt, [4.0]),
    {ok, [[], #{<<"k">> := 1}]} = py:call(Loop, ?F, echo, [], #{kwargs => #{k => 1}}),
    {ok, 8} = py:call(?F, slow_double, [4], #{delay => 0.01}, 5000),
    {error, timeout} = py:call(?F, slow_double, [4], #{delay => 5}, 50),
    {error, timeout} = py:call(Loop, ?F, slow_double, [4], #{kwargs => #{delay => 5},
                                                            timeout => 50}),
    ok.

-spec call_errors_keep_pyport_terms() -> [{doc, string()}].
call_errors_keep_pyport_terms() -> [{doc, "A Python exception is pyport's {python, Type, Message, Traceback}, not erlang_python's {Type, Message}."}].
-spec call_errors_keep_pyport_terms(ct_suite:ct_config()) -> term().
call_errors_keep_pyport_terms(_) ->
    {error, {python, <<"ValueError">>, <<"bad value">>, Tb}} = py:call(?F, fail, []),
    ?assertNotEqual(nomatch, binary:match(Tb, <<"Traceback">>)),
    {error, {python, <<"ModuleNotFoundError">>, _, _}} = py:call(no_such_module, f, []),
    {error, {python, <<"ZeroDivisionError">>, _, _}} = py:eval(<<"1/0">>),
    {error, {python, <<"NameError">>, _, _}} = py:eval(<<"undefined_name_here">>),
    ?assertError({badarg, {args, not_a_list}}, py:call(math, sqrt, not_a_list)),
    ok.

-spec cast_3_4_5() -> [{doc, string()}].
cast_3_4_5() -> [{doc, "py:cast/3,4,5 run the function without a reply; the caller is erlang.self() in Python."}].
-spec cast_3_4_5(ct_suite:ct_config()) -> term().
cast_3_4_5(_) ->
    ok = py:cast(?F, notify_self, [<<"three">>]),
    ok = py:cast(?F, notify_self, [], #{message => <<"four">>}),
    ok = py:cast(?F, notify_self, [], [{message, <<"four-kw">>}]),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    ok = py:cast(Loop, ?F, notify_self, [<<"loop">>]),
    ok = py:cast(Loop, ?F, notify_self, [], #{message => <<"five">>}),
    [receive M -> ok after 5000 -> ct:fail({no_cast, M}) end
     || M <- [<<"three">>, <<"four">>, <<"four-kw">>, <<"loop">>, <<"five">>]],
    %% A failing cast is logged, not returned.
    ok = py:cast(?F, fail, []),
    ok.

-spec spawn_call_and_await() -> [{doc, string()}].
spawn_call_and_await() -> [{doc, "py:spawn_call/3,4,5 return at once; py:await/1,2 collect the result; an await that times out cancels the task and its result never arrives."}].
-spec spawn_call_and_await(ct_suite:ct_config()) -> term().
spawn_call_and_await(_) ->
    R1 = py:spawn_call(?F, slow_double, [1]),
    R2 = py:spawn_call(?F, slow_double, [2], #{delay => 0.01}),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    R3 = py:spawn_call(Loop, ?F, slow_double, [3]),
    R4 = py:spawn_call(Loop, ?F, slow_double, [4], [{delay, 0.01}]),
    {ok, 2} = py:await(R1),
    {ok, 4} = py:await(R2, 5000),
    {ok, 6} = py:await(R3),
    {ok, 8} = py:await(R4, infinity),
    Slow = py:spawn_call(?F, slow_double, [1], #{delay => 10}),
    {error, timeout} = py:await(Slow, 50),
    {error, unknown_task} = py:await(Slow, 50),
    timer:sleep(100),
    [] = pyport_ct:mailbox(),
    ok.

-spec async_call_and_await() -> [{doc, string()}].
async_call_and_await() -> [{doc, "The async worker backend: py:async_call/3,4 start asyncio tasks that run concurrently; py:await and py:async_await collect them."}].
-spec async_call_and_await(ct_suite:ct_config()) -> term().
async_call_and_await(_) ->
    Refs = [py:async_call(?F, slow_double, [I], #{delay => 0.05}) || I <- lists:seq(1, 10)],
    Doubled = [2 * I || I <- lists:seq(1, 10)],
    Doubled = [V || {ok, V} <- [py:await(Ref) || Ref <- Refs]],
    {ok, 4.0} = py:async_await(py:async_call(math, sqrt, [16.0])),
    {ok, 6} = py:async_await(py:async_call(?F, slow_double, [3], [{delay, 0}]), 5000),
    {error, {python, <<"ValueError">>, _, _}} = py:await(py:async_call(?F, fail, [])),
    ok.

-spec async_gather() -> [{doc, string()}].
async_gather() -> [{doc, "py:async_gather/1,2 give the results in order, or every failure with its position."}].
-spec async_gather(ct_suite:ct_config()) -> term().
async_gather(_) ->
    {ok, [2, 4.0, 6]} = py:async_gather([{?F, slow_double, [1]}, {math, sqrt, [16.0]},
                                         {?F, slow_double, [3]}]),
    {error, {gather_failed, [{2, {python, <<"ValueError">>, _, _}}]}} =
        py:async_gather([{?F, slow_double, [1]}, {?F, fail, []}], 5000),
    {ok, []} = py:async_gather([]),
    ok.

-spec eval_with_bindings() -> [{doc, string()}].
eval_with_bindings() -> [{doc, "py_event_loop:eval/3 with `locals` evaluates with those bindings, which do not leak into __main__."}].
-spec eval_with_bindings(ct_suite:ct_config()) -> term().
eval_with_bindings(_) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, 30} = py_event_loop:eval(Loop, <<"x * y">>, #{locals => #{x => 5, y => 6}}),
    {ok, 11} = py_event_loop:eval(Loop, <<"x + y">>, #{locals => [{x, 5}, {y, 6}]}),
    {ok, <<"ab">>} = py_event_loop_pool:eval(<<"a + b">>, #{locals => #{<<"a">> => <<"a">>,
                                                                      b => <<"b">>}}),
    {error, {python, <<"NameError">>, _, _}} = py_event_loop:eval(Loop, <<"x">>),
    ?assertError({badarg, {locals, [1]}}, py_event_loop:eval(Loop, <<"1">>, #{locals => [1]})),
    ?assertError({badarg, {locals, #{1 := 2}}},
                 py_event_loop:eval(Loop, <<"1">>, #{locals => #{1 => 2}})),
    ?assertError({badarg, {option, locals, _}},
                 py_event_loop:exec(Loop, <<"1">>, #{locals => #{}})),
    ok.

-spec eval_1_2_3() -> [{doc, string()}].
eval_1_2_3() -> [{doc, "py:eval/1,2,3: an expression, with a map of local bindings, a timeout, or on a given loop."}].
-spec eval_1_2_3(ct_suite:ct_config()) -> term().
eval_1_2_3(_) ->
    {ok, 3} = py:eval(<<"1 + 2">>),
    {ok, 30} = py:eval(<<"x * y">>, #{x => 5, y => 6}),
    {ok, 7} = py:eval("x + 2", [{x, 5}], 5000),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, 4} = py:eval(Loop, <<"2 * 2">>),
    {ok, 9} = py:eval(Loop, <<"z * z">>, #{z => 3}),
    {error, timeout} = py:eval(<<"__import__('time').sleep(0.5)">>, #{}, 100),
    ok.

-spec exec_1_2() -> [{doc, string()}].
exec_1_2() -> [{doc, "py:exec/1,2 run statements in the loop's __main__; a later py:eval from the same process sees them."}].
-spec exec_1_2(ct_suite:ct_config()) -> term().
exec_1_2(_) ->
    ok = py:exec(<<"def triple(v):\n    return 3 * v\n">>),
    {ok, 12} = py:eval(<<"triple(n)">>, #{n => 4}),
    {ok, 15} = py:call('__main__', triple, [5]),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    ok = py:exec(Loop, "counter = 41"),
    {ok, 42} = py:eval(Loop, <<"counter + 1">>),
    {error, {python, <<"SyntaxError">>, _, _}} = py:exec(<<"def (">>),
    ok.

-spec register_and_unregister_function() -> [{doc, string()}].
register_and_unregister_function() -> [{doc, "py:register_function/2,3 make a fun or M:F callable with erlang.call; after unregister_function/1 it is unknown."}].
-spec register_and_unregister_function(ct_suite:ct_config()) -> term().
register_and_unregister_function(_) ->
    ok = py:register_function(compat_add, fun([A, B]) -> A + B end),
    ok = py:register_function(compat_mf, ?MODULE, add),
    {ok, 3} = py:eval(<<"__import__('erlang').call('compat_add', 1, 2)">>),
    {ok, 7} = py:eval(<<"__import__('erlang').call('compat_mf', 3, 4)">>),
    ok = py:unregister_function(compat_add),
    {error, {python, <<"UnknownCallbackError">>, _, _}} =
        py:eval(<<"__import__('erlang').call('compat_add', 1, 2)">>),
    ok.

-spec attribute_style_callbacks() -> [{doc, string()}].
attribute_style_callbacks() -> [{doc, "A registered function is erlang.<name> and importable with `from erlang import name`; other names (unregistered, private) are AttributeErrors."}].
-spec attribute_style_callbacks(ct_suite:ct_config()) -> term().
attribute_style_callbacks(_) ->
    ok = py:register_function(compat_add, fun([A, B]) -> A + B end),
    {ok, 30} = py:call(?F, call_attribute, [<<"compat_add">>, 10, 20]),
    {ok, 5} = py:call(?F, call_imported, [2, 3]),
    {ok, 30} = py:eval(<<"__import__('erlang').compat_add(10, 20)">>),
    {ok, true} = py:call(?F, has_attribute, [<<"compat_add">>]),
    {ok, false} = py:call(?F, has_attribute, [<<"compat_nothing">>]),
    {ok, false} = py:call(?F, has_attribute, [<<"_compat_add">>]),
    ok = py:exec(<<"from erlang import compat_add as imported_add">>),
    {ok, 9} = py:eval(<<"imported_add(4, 5)">>),
    %% The request itself, with any term for a name: only a registered
    %% name is true, nothing else breaks.
    {ok, {<<"ok">>, true}} = py:call(?F, registered_raw, [<<"compat_add">>]),
    {ok, {<<"ok">>, false}} = py:call(?F, registered_raw, [[1, {2}]]),
    {ok, {<<"ok">>, false}} = py:call(?F, registered_raw, [<<"no_such_callback">>]),
    ok = py:unregister_function(compat_add),
    {error, {python, <<"AttributeError">>, _, _}} =
        py:call(?F, call_attribute, [<<"compat_add">>, 1, 2]),
    {error, {python, <<"ImportError">>, _, _}} = py:call(?F, call_imported, [2, 3]),
    %% The object imported earlier now names an unknown callback.
    {error, {python, <<"UnknownCallbackError">>, _, _}} = py:eval(<<"imported_add(4, 5)">>),
    ok.

-spec schedule_inline_chains() -> [{doc, string()}].
schedule_inline_chains() -> [{doc, "erlang.schedule_inline continues a task with the next step until a value, a coroutine or another marker."}].
-spec schedule_inline_chains(ct_suite:ct_config()) -> term().
schedule_inline_chains(_) ->
    {ok, [499500, 100]} = py:call(?F, chunked, [1000]),
    {ok, 42} = py:call(?F, inline_then_async, [21]),
    {ok, [45, 1]} = py:await(py:async_call(?F, chunked, [10])),
    %% After schedule_py (the task already a Task), inline markers too.
    {ok, 10} = py:call(?F, py_then_inline, [5]),
    ok.

-spec schedule_inline_stays_in_one_iteration() -> [{doc, string()}].
schedule_inline_stays_in_one_iteration() -> [{doc, "Inline steps run in one loop iteration (a ticker task never runs between them), while schedule_py steps let the loop turn."}].
-spec schedule_inline_stays_in_one_iteration(ct_suite:ct_config()) -> term().
schedule_inline_stays_in_one_iteration(_) ->
    Ticker = py:async_call(?F, ticker, [50000]),
    {ok, [T, T, T, T, T]} = py:call(?F, inline_same_iteration, [5]),
    {ok, Ticks} = py:call(?F, py_same_iteration, [5]),
    5 = length(Ticks),
    ?assertEqual(Ticks, lists:usort(Ticks)),
    {ok, _} = py:await(Ticker, 30000),
    ok.

-spec run_from_sync_code() -> [{doc, string()}].
run_from_sync_code() -> [{doc, "erlang.run(coro) and asyncio.run(coro) called from sync code Erlang invoked (directly or under a coroutine) run the coroutine to completion; in a thread with no loop they are the stdlib's own."}].
-spec run_from_sync_code(ct_suite:ct_config()) -> term().
run_from_sync_code(_) ->
    {ok, [2, 3]} = py:call(?F, run_from_sync, [1]),
    {ok, [11, 12]} = py:await(py:async_call(?F, run_from_sync_in_coroutine, [10])),
    {ok, 2} = py:call(?F, run_outside_port_loop, []),
    ok.

-spec run_from_sync_code_keeps_loop_serving() -> [{doc, string()}].
run_from_sync_code_keeps_loop_serving() -> [{doc, "While asyncio.run waits, the loop serves other work: its coroutine awaits an Erlang callback that runs a task on that same loop."}].
-spec run_from_sync_code_keeps_loop_serving(ct_suite:ct_config()) -> term().
run_from_sync_code_keeps_loop_serving(_) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    ok = py:register_function(compat_roundtrip,
                              fun([X]) -> {ok, V} = py:call(Loop, ?F, slow_double, [X]), V end),
    {ok, 14} = py:call(?F, run_loop_keeps_serving, [7]),
    ok.

-spec run_from_sync_code_times_out() -> [{doc, string()}].
run_from_sync_code_times_out() -> [{doc, "A caller's deadline ends an asyncio.run that never finishes (its coroutine is cancelled) and the loop goes on."}].
-spec run_from_sync_code_times_out(ct_suite:ct_config()) -> term().
run_from_sync_code_times_out(_) ->
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, OsPid} = py:call(?F, pid_of_interpreter, []),
    {error, timeout} = py:call(Loop, ?F, run_forever_coroutine, [], #{timeout => 200}),
    {ok, 2.0} = py:call(math, sqrt, [4.0]),
    {ok, OsPid} = py:call(?F, pid_of_interpreter, []),
    {ok, 0} = py:eval(<<"len([t for t in __import__('asyncio').all_tasks() "
                        "if 'sleep' in repr(t.get_coro())])">>),
    ok.

-spec none_atom_per_call() -> [{doc, string()}].
none_atom_per_call() -> [{doc, "The none_atom option makes None `nil` (or `undefined`) in one result, at any depth; other calls keep `none`."}].
-spec none_atom_per_call(ct_suite:ct_config()) -> term().
none_atom_per_call(_) ->
    Nil = #{<<"a">> => nil, <<"b">> => [nil, {nil}]},
    {ok, Nil} = py_event_loop_pool:run(?F, nones, [], #{none_atom => nil}),
    {ok, #{<<"a">> := none}} = py_event_loop_pool:run(?F, nones, []),
    {ok, undefined} = py_event_loop_pool:run(?F, nothing, [], #{none_atom => undefined}),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, Nil} = py_event_loop:await(
                  py_event_loop:create_task(Loop, ?F, nones, [], #{}, #{none_atom => nil})),
    %% A coroutine's result too, and eval.
    {ok, nil} = py_event_loop_pool:run(asyncio, sleep, [0], #{none_atom => nil}),
    {ok, nil} = py_event_loop_pool:eval(<<"None">>, #{none_atom => nil}),
    %% nil from Erlang is None in Python, and comes back as asked.
    {ok, [[nil], #{}]} = py_event_loop_pool:run(?F, echo, [nil], #{none_atom => nil}),
    {ok, [[none], #{}]} = py_event_loop_pool:run(?F, echo, [nil]),
    ?assertError({badarg, {none_atom, null}},
                 py_event_loop_pool:run(?F, nothing, [], #{none_atom => null})),
    ok.

-spec none_atom_per_pool() -> [{doc, string()}].
none_atom_per_pool() -> [{doc, "The none_atom setting makes None `nil` in everything a loop sends (results, erlang.send); a call may still ask for `none`."}].
-spec none_atom_per_pool(ct_suite:ct_config()) -> term().
none_atom_per_pool(_) ->
    {ok, nil} = py:call(?F, nothing, []),
    {ok, #{<<"a">> := nil}} = py:call(?F, nones, []),
    {ok, #{<<"a">> := none}} = py_event_loop_pool:run(?F, nones, [], #{none_atom => none}),
    ok = py:cast(?F, notify_self, [none]),
    receive nil -> ok after 5000 -> ct:fail(no_nil_message) end,
    ok.

-spec bad_none_atom_config() -> [{doc, string()}].
bad_none_atom_config() -> [{doc, "A none_atom setting outside none, nil and undefined is a bad_config naming it."}].
-spec bad_none_atom_config(ct_suite:ct_config()) -> term().
bad_none_atom_config(_) ->
    _ = application:load(pyport),
    ok = application:set_env(pyport, none_atom, null),
    {error, {bad_config, {none_atom, null}}} = pyport_config:loop(1),
    ok = application:unset_env(pyport, none_atom),
    ok.

-spec keyword_lists_as_kwargs() -> [{doc, string()}].
keyword_lists_as_kwargs() -> [{doc, "Keyword lists (Elixir's [a: 1]) are kwargs for run, create_task and spawn_task; a key given twice is a badarg."}].
-spec keyword_lists_as_kwargs(ct_suite:ct_config()) -> term().
keyword_lists_as_kwargs(_) ->
    {ok, [[1], #{<<"a">> := 1, <<"b">> := 2}]} =
        py_event_loop_pool:run(?F, echo, [1], #{kwargs => [{a, 1}, {b, 2}]}),
    {ok, [[], #{<<"a">> := 1}]} =
        py_event_loop_pool:await(py_event_loop_pool:create_task(?F, echo, [], [{a, 1}])),
    ok = py_event_loop_pool:spawn_task(?F, notify_self, [], [{message, <<"kw">>}]),
    receive <<"kw">> -> ok after 5000 -> ct:fail(no_spawn_message) end,
    ?assertError({badarg, {kwargs, [{a, 1}, {a, 2}]}},
                 py_event_loop_pool:run(?F, echo, [], #{kwargs => [{a, 1}, {a, 2}]})),
    ?assertError({badarg, {kwargs, [{a, 1}, 2]}},
                 py_event_loop_pool:create_task(?F, echo, [], [{a, 1}, 2])),
    %% The empty keyword list is no kwargs.
    {ok, [[], #{}]} = py_event_loop_pool:await(py_event_loop_pool:create_task(?F, echo, [], [])),
    {ok, 1} = py:eval(<<"1">>, []),
    ok.

-spec structs_arrive_as_dicts() -> [{doc, string()}].
structs_arrive_as_dicts() -> [{doc, "An Elixir struct is a map: Python gets a dict with '__struct__' (a str) and gives back a map with binary keys, as docs/elixir.md says."}].
-spec structs_arrive_as_dicts(ct_suite:ct_config()) -> term().
structs_arrive_as_dicts(_) ->
    Struct = #{'__struct__' => 'Elixir.URI', host => <<"example.org">>, port => 443},
    {ok, [[Back], #{}]} = py:call(?F, echo, [Struct]),
    #{<<"__struct__">> := <<"Elixir.URI">>, <<"host">> := <<"example.org">>,
      <<"port">> := 443} = Back,
    {ok, <<"Elixir.URI">>} = py:eval(<<"s['__struct__']">>, #{s => Struct}),
    ok.

-spec reload_every_loop() -> [{doc, string()}].
reload_every_loop() -> [{doc, "py:reload/1 (py_event_loop_pool:reload/1) reloads a module on every loop that imported it; a syntax error is reported per loop, which keep the old module."}].
-spec reload_every_loop(ct_suite:ct_config()) -> term().
reload_every_loop(Config) ->
    File = filename:join(?config(reload_dir, Config), "compat_reloaded.py"),
    ok = file:write_file(File, <<"VERSION = 1\n">>),
    Loops = [{pyport_loop, I} || I <- lists:seq(1, ?NUM_LOOPS)],
    [{ok, 1} = py_event_loop:run(L, compat_reloaded, 'VERSION.__int__', [], #{})
     || L <- Loops],
    ok = file:write_file(File, <<"VERSION = 200\n">>),
    ok = py:reload(compat_reloaded),
    [{ok, 200} = py_event_loop:run(L, compat_reloaded, 'VERSION.__int__', [], #{})
     || L <- Loops],
    ok = file:write_file(File, <<"VERSION = (\n">>),
    {error, [{1, {python, <<"SyntaxError">>, _, _}}, {2, {python, <<"SyntaxError">>, _, _}}]} =
        py_event_loop_pool:reload(<<"compat_reloaded">>),
    [{ok, 200} = py_event_loop:run(L, compat_reloaded, 'VERSION.__int__', [], #{})
     || L <- Loops],
    %% Not imported anywhere: nothing to do.
    ok = py:reload(compat_never_imported),
    ok.

-spec stream_3_4() -> [{doc, string()}].
stream_3_4() -> [{doc, "py:stream/3,4 collect every item of a generator or async generator (kwargs as a map or keyword list), with pyport's error terms."}].
-spec stream_3_4(ct_suite:ct_config()) -> term().
stream_3_4(_) ->
    {ok, [0, 1, 2, 3, 4]} = py:stream(?F, count, [5]),
    {ok, [0, 3, 6, 9]} = py:stream(?F, count, [10], #{step => 3}),
    {ok, [0, 5]} = py:stream(?F, count, [10], [{step, 5}]),
    {ok, [#{<<"i">> := 0, <<"none">> := none}, #{<<"i">> := 1}]} = py:stream(?F, acount, [2]),
    {ok, []} = py:stream(?F, count, [0]),
    {error, {python, <<"ModuleNotFoundError">>, _, _}} = py:stream(no_such_module, f, []),
    %% Keyword lists reach py_event_loop_pool:stream/4 itself too.
    {ok, [0, 4]} = py_stream:to_list(py_event_loop_pool:stream(?F, count, [8],
                                                               #{kwargs => [{step, 4}]})),
    ok.

%% -- issue 25: what erlang_python users missed -------------------------------------

-spec context_keeps_state_per_process() -> [{doc, string()}].
context_keeps_state_per_process() -> [{doc, "py:context/0 is the caller's own namespace: exec's definitions stay for its later call/eval/exec, another process's context does not see them, and it has erlang predefined."}].
-spec context_keeps_state_per_process(ct_suite:ct_config()) -> term().
context_keeps_state_per_process(_) ->
    Ctx = py:context(),
    ?assertEqual(Ctx, py:context()),
    ok = py:exec(Ctx, <<"counter = 0\ndef bump(by=1):\n    global counter\n    counter += by\n    return counter\n">>),
    {ok, 1} = py:call(Ctx, '__main__', bump, []),
    {ok, 11} = py:call(Ctx, '__main__', bump, [], #{kwargs => #{by => 10}}),
    {ok, 11} = py:eval(Ctx, <<"counter">>),
    {ok, 16} = py:eval(Ctx, <<"counter + x">>, #{x => 5}),
    {error, {python, <<"NameError">>, _, _}} = py:eval(Ctx, <<"x">>),
    {ok, 4.0} = py:call(Ctx, math, sqrt, [16.0]),
    %% cast in the context: its effect shows in the namespace.
    ok = py:cast(Ctx, '__main__', bump, [], #{by => 100}),
    ok = pyport_ct:wait_until(fun() -> py:eval(Ctx, <<"counter">>) =:= {ok, 111} end, 10000),
    ok = py:cast(Ctx, '__main__', bump, [100]),
    ok = pyport_ct:wait_until(fun() -> py:eval(Ctx, <<"counter">>) =:= {ok, 211} end, 10000),
    {ok, 11} = py:eval(Ctx, <<"counter - 200">>),
    ok = py:exec(Ctx, <<"import json as j">>),
    {ok, <<"[1]">>} = py:call(Ctx, j, dumps, [[1]]),
    {ok, true} = py:eval(Ctx, <<"erlang.state_get is not None">>),
    %% Not the loop's __main__, and not another process's context.
    {error, {python, <<"NameError">>, _, _}} = py:eval(<<"counter">>),
    Self = self(),
    spawn_link(fun() -> Self ! {other, py:eval(py:context(), <<"'counter' in globals()">>)} end),
    {ok, false} = receive {other, R} -> R after 10000 -> ct:fail(no_reply) end,
    {error, {python, <<"NameError">>, <<"name 'nope' is not defined in this context">>, _}} =
        py:call(Ctx, '__main__', nope, []),
    ok.

-spec context_per_loop() -> [{doc, string()}].
context_per_loop() -> [{doc, "py:context(N) is the caller's context on loop N, each its own namespace; N beyond the pool is a badarg naming the pool size."}].
-spec context_per_loop(ct_suite:ct_config()) -> term().
context_per_loop(_) ->
    C1 = py:context(1),
    C2 = py:context(2),
    ?assertNotEqual(C1, C2),
    ok = py:exec(C1, <<"x = 'one'">>),
    ok = py:exec(C2, <<"x = 'two'">>),
    {ok, <<"one">>} = py:eval(C1, <<"x">>),
    {ok, <<"two">>} = py:eval(py:context(2), <<"x">>),
    {ok, Pid1} = py:eval(C1, <<"__import__('os').getpid()">>),
    {ok, Pid2} = py:eval(C2, <<"__import__('os').getpid()">>),
    ?assertNotEqual(Pid1, Pid2),
    ?assertError({badarg, {context, 3, {num_loops, 2}}}, py:context(3)),
    ok.

-spec context_released_with_owner() -> [{doc, string()}].
context_released_with_owner() -> [{doc, "A context goes when its owner exits: the port's count of live contexts drops back."}].
-spec context_released_with_owner(ct_suite:ct_config()) -> term().
context_released_with_owner(_) ->
    Loop = {pyport_loop, 1},
    {ok, Before} = py_event_loop:run(Loop, ?F, live_contexts, [], #{}),
    Self = self(),
    Owner = spawn(fun() ->
                          Ctx = py:context(1),
                          ok = py:exec(Ctx, <<"big = list(range(1000))">>),
                          Self ! made,
                          receive stop -> ok end
                  end),
    receive made -> ok after 10000 -> ct:fail(no_context) end,
    {ok, During} = py_event_loop:run(Loop, ?F, live_contexts, [], #{}),
    ?assertEqual(Before + 1, During),
    Owner ! stop,
    ok = pyport_ct:wait_until(
           fun() -> {ok, Before} =:= py_event_loop:run(Loop, ?F, live_contexts, [], #{}) end,
           10000),
    ok.

-spec context_lost_after_port_restart() -> [{doc, string()}].
context_lost_after_port_restart() -> [{doc, "After its port restarts a context is gone: calls on it are {error, context_lost}; py:context/0 then gives a fresh one."}].
-spec context_lost_after_port_restart(ct_suite:ct_config()) -> term().
context_lost_after_port_restart(_) ->
    {ok, {pyport_loop, I} = Loop} = py_event_loop_pool:get_loop(),
    Ctx = py:context(),
    ok = py:exec(Ctx, <<"kept = 1">>),
    ok = py_event_loop_pool:restart_loop(Loop),
    {error, context_lost} = py:eval(Ctx, <<"kept">>),
    {error, context_lost} = py:exec(Ctx, <<"kept = 2">>),
    {error, context_lost} = py:call(Ctx, math, sqrt, [4.0]),
    {error, context_lost} = py:cast(Ctx, math, sqrt, [4.0]),
    {error, context_lost} = py_context:release(Ctx),
    Fresh = py:context(I),
    ?assertNotEqual(Ctx, Fresh),
    {error, {python, <<"NameError">>, _, _}} = py:eval(Fresh, <<"kept">>),
    ok.

-spec context_limit() -> [{doc, string()}].
context_limit() -> [{doc, "A loop holds at most 1024 contexts whoever owns them: one more is {error, {context_limit, 1024}}, and an owner's exit makes room (one process is bounded sooner, by max_handles_per_owner: a context is a handle it owns)."}].
-spec context_limit(ct_suite:ct_config()) -> term().
context_limit(_) ->
    Loop = {pyport_loop, 1},
    Self = self(),
    Holders = [spawn_link(fun() ->
                                  Ctxs = [begin {ok, C} = py_context:new(Loop), C end
                                          || _ <- lists:seq(1, 256)],
                                  Self ! {made, self(), length(Ctxs)},
                                  receive stop -> ok end
                          end) || _ <- lists:seq(1, 4)],
    [receive {made, H, 256} -> ok after 30000 -> ct:fail({no_contexts, H}) end || H <- Holders],
    {error, {context_limit, 1024}} = py_context:new(Loop),
    [First | Rest] = Holders,
    unlink(First),
    First ! stop,
    ok = pyport_ct:wait_until(fun() -> element(1, py_context:new(Loop)) =:= ok end, 10000),
    [begin unlink(H), H ! stop end || H <- Rest],
    ok.

-spec context_call_times_out() -> [{doc, string()}].
context_call_times_out() -> [{doc, "A call in a context is an ordinary task: its deadline interrupts plain busy code ({error, timeout}) and the context keeps its state and serves again (pyport's answer to erlang_python's interrupt/1)."}].
-spec context_call_times_out(ct_suite:ct_config()) -> term().
context_call_times_out(_) ->
    Ctx = py:context(),
    ok = py:exec(Ctx, <<"import pyport_compat\nkept = 'yes'">>),
    {error, timeout} = py:call(Ctx, ?F, busy, [30.0], #{timeout => 300}),
    {ok, <<"yes">>} = py:eval(Ctx, <<"kept">>),
    ok.

-spec interrupt_cancels_a_spawned_task() -> [{doc, string()}].
interrupt_cancels_a_spawned_task() -> [{doc, "py:interrupt/1 cancels a task of spawn_call/async_call (ok), after which its await is unknown_task; a finished or unknown task is not_running."}].
-spec interrupt_cancels_a_spawned_task(ct_suite:ct_config()) -> term().
interrupt_cancels_a_spawned_task(_) ->
    Ref = py:spawn_call(?F, slow_double, [1], #{delay => 30}),
    ok = py:interrupt(Ref),
    {error, unknown_task} = py:await(Ref, 100),
    not_running = py:interrupt(Ref),
    Done = py:spawn_call(?F, slow_double, [1], #{delay => 0}),
    timer:sleep(500),
    not_running = py:interrupt(Done),
    ok.

-spec shared_state_from_erlang_and_python() -> [{doc, string()}].
shared_state_from_erlang_and_python() -> [{doc, "py:state_* and Python's erlang.state_* share one store across loops; incr/decr are atomic counters."}].
-spec shared_state_from_erlang_and_python(ct_suite:ct_config()) -> term().
shared_state_from_erlang_and_python(_) ->
    ok = py:state_clear(),
    ok = py:state_store(<<"config">>, #{retries => 3}),
    {ok, #{retries := 3}} = py:state_fetch(<<"config">>),
    {error, not_found} = py:state_fetch(<<"nothing">>),
    {ok, [#{<<"retries">> := 3}, 5, 0]} =
        py_event_loop:run({pyport_loop, 1}, ?F, state_from_python, [<<"config">>, 5], #{}),
    {ok, [_, 12, 0]} =
        py_event_loop:run({pyport_loop, 2}, ?F, state_from_python, [<<"config">>, 7], #{}),
    {ok, #{<<"from">> := <<"python">>}} = py:state_fetch(<<"config.py">>),
    13 = py:state_incr(<<"config.hits">>),
    15 = py:state_incr(<<"config.hits">>, 2),
    14 = py:state_decr(<<"config.hits">>),
    10 = py:state_decr(<<"config.hits">>, 4),
    ?assertEqual(lists:sort([<<"config">>, <<"config.py">>, <<"config.hits">>]),
                 lists:sort(py:state_keys())),
    {ok, [<<"config">>, <<"config.hits">>, <<"config.py">>]} =
        py:eval(<<"sorted(erlang.state_keys())">>),
    ok = py:state_remove(<<"config">>),
    {ok, none} = py:eval(<<"erlang.state_get('config')">>),
    {error, {not_a_counter, <<"config.py">>}} = py:state_incr(<<"config.py">>),
    ok = py:state_clear(),
    [] = py:state_keys(),
    ok.

-spec shared_state_survives_port_restart() -> [{doc, string()}].
shared_state_survives_port_restart() -> [{doc, "The shared state lives in Erlang: a port restart keeps it."}].
-spec shared_state_survives_port_restart(ct_suite:ct_config()) -> term().
shared_state_survives_port_restart(_) ->
    {ok, none} = py:eval(<<"erlang.state_set('kept', [1, 2])">>),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    ok = py_event_loop_pool:restart_loop(Loop),
    {ok, [1, 2]} = py:eval(<<"erlang.state_get('kept')">>),
    {ok, [1, 2]} = py:state_fetch(<<"kept">>),
    ok.

-spec shared_state_bounds() -> [{doc, string()}].
shared_state_bounds() -> [{doc, "The store is bounded: a value over 1 MiB and a key past 100000 are refused with errors naming the limit, in Erlang and as erlang.StateError in Python."}].
-spec shared_state_bounds(ct_suite:ct_config()) -> term().
shared_state_bounds(_) ->
    ok = py:state_clear(),
    Big = binary:copy(<<"x">>, 2 * 1024 * 1024),
    {error, {state_value_too_large, Size, 1048576}} = py:state_store(big, Big),
    ?assert(Size > 1048576),
    {error, {python, <<"StateError">>, Message, _}} =
        py:eval(<<"erlang.state_set('big', 'x' * (2 * 1024 * 1024))">>),
    ?assertMatch({_, _}, binary:match(Message, <<"over the limit of 1048576 bytes">>)),
    Max = pyport_state:max_keys(),
    [ok = py:state_store(K, K) || K <- lists:seq(1, Max)],
    {error, {state_full, Max}} = py:state_store(one_more, 1),
    {error, {state_full, Max}} = py:state_incr(one_more),
    ok = py:state_store(1, replaced),
    {error, {python, <<"StateError">>, Full, _}} = py:eval(<<"erlang.state_set('one_more', 1)">>),
    ?assertMatch({_, _}, binary:match(Full, <<"maximum of 100000 keys">>)),
    ok = py:state_clear(),
    ok.

-spec erlang_predefined_in_eval_and_exec() -> [{doc, string()}].
erlang_predefined_in_eval_and_exec() -> [{doc, "`erlang` is predefined in py:eval/py:exec's __main__, as in erlang_python: a registered function is erlang.my_func(...) with no import (a NameError before issue 25)."}].
-spec erlang_predefined_in_eval_and_exec(ct_suite:ct_config()) -> term().
erlang_predefined_in_eval_and_exec(_) ->
    ok = py:register_function(my_func, fun([A, B]) -> A + B end),
    {ok, 30} = py:eval(<<"erlang.my_func(10, 20)">>),
    ok = py:exec(<<"total = erlang.my_func(1, 2)">>),
    {ok, 3} = py:eval(<<"total">>),
    {ok, 7} = py:eval(<<"erlang.call('my_func', 3, 4)">>),
    {ok, Loop} = py_event_loop_pool:get_loop(),
    {ok, 5} = py_event_loop:eval(Loop, <<"erlang.my_func(2, 3)">>),
    ok.

-spec stream_start_sends_events() -> [{doc, string()}].
stream_start_sends_events() -> [{doc, "py:stream_start/3,4 return {ok, Ref} at once; the items come as {py_stream, Ref, {data, Item}} messages, then {py_stream, Ref, done}, with no acknowledgement needed past pyport's window."}].
-spec stream_start_sends_events(ct_suite:ct_config()) -> term().
stream_start_sends_events(_) ->
    {ok, Ref} = py:stream_start(?F, count_up, [200]),
    ?assertEqual({ok, lists:seq(1, 200)}, collect(Ref)),
    {ok, Ref2} = py:stream_start(builtins, iter, [[1, 2, 3]]),
    {ok, [1, 2, 3]} = collect(Ref2),
    ok = py:exec(<<"def letters(word, upper=False):\n    for c in word:\n        yield c.upper() if upper else c\n">>),
    {ok, Ref3} = py:stream_start('__main__', letters, [<<"ab">>], #{kwargs => #{upper => true}}),
    {ok, [<<"A">>, <<"B">>]} = collect(Ref3),
    ok.

-spec stream_start_to_another_owner() -> [{doc, string()}].
stream_start_to_another_owner() -> [{doc, "stream_start/4's `owner` receives the events; the stream ends with its owner."}].
-spec stream_start_to_another_owner(ct_suite:ct_config()) -> term().
stream_start_to_another_owner(_) ->
    Self = self(),
    Owner = spawn_link(fun() -> receive {go, Ref} -> Self ! {got, collect(Ref)} end end),
    {ok, Ref} = py:stream_start(?F, count_up, [3], #{owner => Owner}),
    Owner ! {go, Ref},
    {ok, [1, 2, 3]} = receive {got, G} -> G after 10000 -> ct:fail(no_items) end,
    [] = [M || {py_stream, _, _} = M <- pyport_ct:mailbox()],
    ok.

-spec stream_cancel_stops_the_generator() -> [{doc, string()}].
stream_cancel_stops_the_generator() -> [{doc, "py:stream_cancel/1 stops an endless generator: the owner gets {error, cancelled} and no more items; cancelling again is ok."}].
-spec stream_cancel_stops_the_generator(ct_suite:ct_config()) -> term().
stream_cancel_stops_the_generator(_) ->
    {ok, Ref} = py:stream_start(?F, forever, []),
    receive {py_stream, Ref, {data, 1}} -> ok after 10000 -> ct:fail(no_item) end,
    ok = py:stream_cancel(Ref),
    ok = drain_until_cancelled(Ref),
    timer:sleep(200),
    [] = [M || {py_stream, R, _} = M <- pyport_ct:mailbox(), R =:= Ref],
    ok = py:stream_cancel(Ref),
    ok.

-spec stream_start_error_event() -> [{doc, string()}].
stream_start_error_event() -> [{doc, "A generator that raises ends its stream with {py_stream, Ref, {error, {python, ...}}} after the items it yielded."}].
-spec stream_start_error_event(ct_suite:ct_config()) -> term().
stream_start_error_event(_) ->
    {ok, Ref} = py:stream_start(?F, broken_after, [2]),
    {error, {[1, 2], {python, <<"RuntimeError">>, <<"broken generator">>, _}}} = collect(Ref),
    ok.

-spec stream_eval_collects() -> [{doc, string()}].
stream_eval_collects() -> [{doc, "py:stream_eval/1,2 collect the items of a generator expression evaluated in the caller's loop's __main__, with bindings."}].
-spec stream_eval_collects(ct_suite:ct_config()) -> term().
stream_eval_collects(_) ->
    {ok, [0, 1, 4, 9]} = py:stream_eval(<<"(x * x for x in range(4))">>),
    {ok, [<<"H">>, <<"I">>]} = py:stream_eval(<<"(c.upper() for c in w)">>, #{w => <<"hi">>}),
    {error, {python, <<"TypeError">>, _, _}} = py:stream_eval(<<"42">>),
    ok.

-spec call_on_a_named_pool() -> [{doc, string()}].
call_on_a_named_pool() -> [{doc, "py:call(Pool, M, F, A) and call(Pool, M, F, A, Kwargs) run on a named pool (py_pool); a pool that is not started is {error, {pool_not_started, Pool}} (was a misleading {badarg, {kwargs, [4]}})."}].
-spec call_on_a_named_pool(ct_suite:ct_config()) -> term().
call_on_a_named_pool(_) ->
    {error, {pool_not_started, io_pool}} = py:call(io_pool, math, sqrt, [4]),
    {ok, Sup} = py_pool:start_link(#{name => io_pool, size => 1,
                                     python_path => [pyport_ct:helpers_dir()]}),
    try
        {ok, 2.0} = py:call(io_pool, math, sqrt, [4]),
        {ok, [[1], #{<<"k">> := 2}]} = py:call(io_pool, ?F, echo, [1], #{k => 2}),
        {ok, PoolPid} = py:call(io_pool, os, getpid, []),
        {ok, DefaultPid} = py:call(os, getpid, []),
        ?assertNotEqual(PoolPid, DefaultPid)
    after
        unlink(Sup),
        exit(Sup, shutdown),
        pyport_ct:wait_until(fun() -> not is_process_alive(Sup) end, 10000)
    end,
    ok.

-spec register_pool_routes_calls() -> [{doc, string()}].
register_pool_routes_calls() -> [{doc, "py:register_pool(Pool, Module | {Module, Func}) routes py:call/3,4,5 of it to that pool until unregister_pool/1."}].
-spec register_pool_routes_calls(ct_suite:ct_config()) -> term().
register_pool_routes_calls(_) ->
    {ok, Sup} = py_pool:start_link(#{name => io_pool, size => 1,
                                     python_path => [pyport_ct:helpers_dir()]}),
    try
        {ok, PoolPid} = py:call(io_pool, os, getpid, []),
        ok = py:exec(<<"import os">>),
        {ok, MyPid} = py:call(os, getpid, []),
        ?assertNotEqual(PoolPid, MyPid),
        ok = py:register_pool(io_pool, os),
        {ok, PoolPid} = py:call(os, getpid, []),
        {ok, PoolPid} = py:call(<<"os">>, getpid, [], #{}),
        ok = py:unregister_pool(os),
        {ok, MyPid} = py:call(os, getpid, []),
        ok = py:register_pool(io_pool, {?F, echo}),
        {ok, [[7], #{}]} = py:call(?F, echo, [7]),
        ok = py:register_pool(nowhere, math),
        {error, {pool_not_started, nowhere}} = py:call(math, sqrt, [4.0])
    after
        unlink(Sup),
        exit(Sup, shutdown),
        pyport_ct:wait_until(fun() -> not is_process_alive(Sup) end, 10000)
    end,
    ok.

-spec memory_stats_and_gc() -> [{doc, string()}].
memory_stats_and_gc() -> [{doc, "py:memory_stats/0 gives erlang_python's keys for the caller's loop (traced_memory_* between tracemalloc_start/0,1 and tracemalloc_stop/0, which act on every loop); py:gc/0,1 collect on every loop and count what they found; py:version/0 is sys.version."}].
-spec memory_stats_and_gc(ct_suite:ct_config()) -> term().
memory_stats_and_gc(_) ->
    {ok, #{gc_stats := [_, _, _], gc_count := {_, _, _}, gc_threshold := {_, _, _}} = Stats} =
        py:memory_stats(),
    false = maps:is_key(traced_memory_current, Stats),
    ok = py:tracemalloc_start(),
    {ok, #{traced_memory_current := Cur, traced_memory_peak := Peak}} = py:memory_stats(),
    ?assert(is_integer(Cur) andalso Peak >= Cur),
    ok = py:tracemalloc_stop(),
    {ok, Stopped} = py:memory_stats(),
    false = maps:is_key(traced_memory_current, Stopped),
    ok = py:tracemalloc_start(5),
    [{ok, true} = py_event_loop:eval({pyport_loop, I}, <<"__import__('tracemalloc').is_tracing()">>, #{})
     || I <- [1, 2]],
    ok = py:tracemalloc_stop(),
    {ok, Version} = py:version(),
    {ok, Version} = py:eval(<<"__import__('sys').version">>),
    ?assertMatch(<<"3.", _/binary>>, Version),
    ok = py:exec(<<"class Cycle:\n    pass\nfor _ in range(100):\n    a = Cycle(); b = Cycle(); a.b = b; b.a = a\ndel a, b\n">>),
    {ok, Found} = py:gc(),
    ?assert(Found >= 200),
    {ok, N0} = py:gc(0),
    ?assert(is_integer(N0)),
    ?assertError(function_clause, py:gc(3)),
    ok.

-spec configure_logging_sets_level() -> [{doc, string()}].
configure_logging_sets_level() -> [{doc, "py:configure_logging/0,1 set Python's root level on every loop, and on ports that start later."}].
-spec configure_logging_sets_level(ct_suite:ct_config()) -> term().
configure_logging_sets_level(_) ->
    ok = py:configure_logging(#{level => error}),
    [{ok, 40} = py_event_loop:run({pyport_loop, I}, ?F, root_log_level, [], #{})
     || I <- [1, 2]],
    ok = py_event_loop_pool:restart_loop({pyport_loop, 1}),
    {ok, 40} = py_event_loop:run({pyport_loop, 1}, ?F, root_log_level, [], #{}),
    ok = py:configure_logging(),
    {ok, 10} = py_event_loop:run({pyport_loop, 2}, ?F, root_log_level, [], #{}),
    ?assertError({badarg, {configure_logging, [format], _}},
                 py:configure_logging(#{format => "%(message)s"})),
    ok.

-spec venv_api() -> [{doc, string()}].
venv_api() -> [{doc, "py:ensure_venv/2 makes a venv with the port's Python and restarts the loops in it; venv_info/0 reports it; deactivate_venv/0 undoes it; activate_venv/1 of a directory that is not a venv is {error, {bad_venv, Dir, Why}} and changes nothing."}].
-spec venv_api(ct_suite:ct_config()) -> term().
venv_api(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "compat_venv"),
    Reqs = filename:join(?config(priv_dir, Config), "requirements.txt"),
    ok = file:write_file(Reqs, <<"# nothing to install\n">>),
    {ok, #{active := false}} = py:venv_info(),
    {error, {bad_venv, <<"/nonexistent">>, Why}} = py:activate_venv("/nonexistent"),
    ?assertMatch({_, _}, binary:match(Why, <<"not a directory">>)),
    {ok, none} = py:call(?F, virtual_env, []),
    ok = py:ensure_venv(Dir, Reqs),
    {ok, #{active := true, venv_path := Dir}} = py:venv_info(),
    Abs = list_to_binary(filename:absname(Dir)),
    [{ok, Abs} = py_event_loop:run({pyport_loop, I}, ?F, virtual_env, [], #{}) || I <- [1, 2]],
    ok = py:deactivate_venv(),
    {ok, #{active := false}} = py:venv_info(),
    ok = py:activate_venv(Dir),
    {ok, #{active := true}} = py:venv_info(),
    [{ok, Abs} = py_event_loop:run({pyport_loop, I}, ?F, virtual_env, [], #{}) || I <- [1, 2]],
    ok = py:deactivate_venv(),
    ok.

-spec not_started_says_so() -> [{doc, string()}].
not_started_says_so() -> [{doc, "Without the application, py's calls say {loop_unavailable, pyport_not_started} instead of a bare loop_unavailable."}].
-spec not_started_says_so(ct_suite:ct_config()) -> term().
not_started_says_so(_) ->
    NotStarted = {error, {loop_unavailable, pyport_not_started}},
    NotStarted = py:call(math, sqrt, [4.0]),
    NotStarted = py:eval(<<"1">>),
    NotStarted = py:exec(<<"x = 1">>),
    NotStarted = py:stream_eval(<<"iter([])">>),
    NotStarted = py:stream_start(?F, count_up, [1]),
    NotStarted = py:gc(),
    NotStarted = py:memory_stats(),
    {error, not_started} = py:state_store(k, v),
    ?assertError({py_context, {loop_unavailable, pyport_not_started}}, py:context()),
    ok.

-spec unconvertible_result_says_what_to_do() -> [{doc, string()}].
unconvertible_result_says_what_to_do() -> [{doc, "A result without a term form names its type and says what to do: result => handle | auto, or a stream for a generator."}].
-spec unconvertible_result_says_what_to_do(ct_suite:ct_config()) -> term().
unconvertible_result_says_what_to_do(_) ->
    Handle = <<"return a list, tuple, dict, str, bytes, number, bool or None instead, "
               "give the class an __erlang__() method, or keep the object in Python "
               "with the task option result => handle (or result => auto for the "
               "parts without a term form; docs/handles.md)">>,
    [begin
         {error, {python, <<"TypeError">>, Message, _}} = py:call(?F, unconvertible, [Kind]),
         ?assertEqual(<<"cannot convert Python object of type '", Type/binary,
                        "' to an Erlang term; ", Handle/binary>>, Message)
     end || {Kind, Type} <- [{set, <<"set">>}, {custom, <<"Custom">>},
                             {datetime, <<"datetime">>}]],
    {error, {python, <<"TypeError">>, Gen, _}} = py:call(?F, unconvertible, [generator]),
    ?assertEqual(<<"cannot convert Python object of type 'generator' to an Erlang term; "
                   "iterate it from Erlang as a stream (py_event_loop_pool:stream/4, "
                   "py:stream/3, docs/streams.md), or keep it in Python with the task "
                   "option result => handle">>, Gen),
    %% What the hint says works.
    {ok, Obj} = py_event_loop_pool:run(?F, unconvertible, [set], #{result => handle}),
    {ok, [1, 2]} = py_event_loop_pool:run(builtins, sorted, [Obj]),
    {ok, [0, 1, 2]} = py:stream(builtins, iter, [[0, 1, 2]]),
    ok.

-spec porting_guide_runs() -> [{doc, string()}].
porting_guide_runs() -> [{doc, "Every ```erlang block of docs/porting.md marked <!-- run --> runs as written against a running pyport, each match in it holding (the guide is the output of this case)."}].
-spec porting_guide_runs(ct_suite:ct_config()) -> term().
porting_guide_runs(_) ->
    {Blocks, Markers} = porting_blocks(),
    %% Every marker has its block, and the guide has some.
    ?assertEqual(Markers, length(Blocks)),
    ?assert(length(Blocks) >= 7),
    ok = py:register_function(my_func, fun([A, B]) -> A + B end),
    [begin
         ct:log("porting.md block ~b:~n~s", [N, Block]),
         Self = self(),
         %% Each block in a process of its own, as a user's shell would be.
         {Pid, Mon} = spawn_monitor(fun() -> Self ! {block, self(), eval_block(Block)} end),
         receive
             {block, Pid, Value} -> ct:log("= ~p", [Value]);
             {'DOWN', Mon, process, Pid, Reason} -> ct:fail({porting_block, N, Block, Reason})
         after 120000 -> ct:fail({porting_block_timeout, N})
         end,
         erlang:demonitor(Mon, [flush])
     end || {N, Block} <- lists:enumerate(Blocks)],
    ok.

-spec python_path_string_says_list() -> [{doc, string()}].
python_path_string_says_list() -> [{doc, "python_path given as one string (or binary) is refused with the value and how to write it, not just {python_path, Value}."}].
-spec python_path_string_says_list(ct_suite:ct_config()) -> term().
python_path_string_says_list(_) ->
    _ = application:load(pyport),
    try
        ok = application:set_env(pyport, event_loop_pool_size, 1),
        ok = application:set_env(pyport, python_path, "priv/python"),
        {error, Start} = application:ensure_all_started(pyport),
        ?assert(contains(Start, {bad_config,
                                 {python_path, "priv/python",
                                  "python_path is a list of directories: write [\"priv/python\"]"}})),
        ok = application:set_env(pyport, python_path, <<"priv/python">>),
        ?assertEqual({error, {bad_config, {python_path, <<"priv/python">>,
                                           "python_path is a list of directories: "
                                           "write [<<\"priv/python\">>]"}}},
                     pyport_config:loop(1)),
        ok = application:set_env(pyport, python_path, [foo]),
        {error, {bad_config, {python_path, [foo]}}} = pyport_config:loop(1)
    after
        application:unset_env(pyport, python_path)
    end,
    ok.

-spec unknown_keys_warning_is_two_lines() -> [{doc, string()}].
unknown_keys_warning_is_two_lines() -> [{doc, "Misspelt keys make one warning of two lines: the keys and what they probably meant, then the known keys (it was 22 lines)."}].
-spec unknown_keys_warning_is_two_lines(ct_suite:ct_config()) -> term().
unknown_keys_warning_is_two_lines(_) ->
    Text = unicode:characters_to_binary(
             pyport_config:unknown_keys_message([pythonpath, pool_size, {loops, 1, maxpending}])),
    [First, Second] = binary:split(Text, <<"\n">>, [global]),
    ?assertEqual(<<"pyport: unknown configuration key(s) pythonpath, pool_size, "
                   "{loops,1,maxpending} (ignored; refused in a loops entry): did you mean "
                   "python_path for pythonpath, event_loop_pool_size for pool_size?">>, First),
    ?assertMatch(<<"known keys: actor_max_backlog, allow_other_python, cancel_grace_ms, ", _/binary>>, Second),
    ?assertMatch({_, _}, binary:match(Second, <<", python_path, ">>)),
    %% As logged at start.
    ok = pyport_ct:capture_logs(),
    ok = pyport_ct:start([{event_loop_pool_size, 1}, {pythonpath, ["/tmp"]}]),
    Event = pyport_ct:await_log(fun(E) -> pyport_ct:log_mentions(E, <<"unknown configuration">>) end,
                                5000),
    #{msg := {Format, Args}} = Event,
    Logged = unicode:characters_to_binary(io_lib:format(Format, Args)),
    [_, <<"known keys: ", _/binary>>] = binary:split(Logged, <<"\n">>, [global]),
    ok = pyport_ct:release_logs().

-spec tracing_maps_to_telemetry() -> [{doc, string()}].
tracing_maps_to_telemetry() -> [{doc, "erlang_python's tracing maps onto py_telemetry: every py:call/eval/exec is a [pyport, task, stop] event with its duration, loop and result, in the caller."}].
-spec tracing_maps_to_telemetry(ct_suite:ct_config()) -> term().
tracing_maps_to_telemetry(_) ->
    Self = self(),
    ok = py_telemetry:attach(compat_spans, [[pyport, task, stop]],
                             fun(Event, Measurements, Meta, To) -> To ! {span, Event, Measurements, Meta} end,
                             Self),
    try
        {ok, 4.0} = py:call(math, sqrt, [16.0]),
        {error, _} = py:eval(<<"1 / 0">>),
        receive {span, [pyport, task, stop], #{duration_us := D}, #{loop := _, result := ok}} ->
                ?assert(is_integer(D) andalso D >= 0)
        after 5000 -> ct:fail(no_span)
        end,
        receive {span, _, _, #{result := error}} -> ok after 5000 -> ct:fail(no_error_span) end
    after
        py_telemetry:detach(compat_spans)
    end,
    ok.

%% -- helpers -------------------------------------------------------------------------

-spec contains(term(), term()) -> boolean().
contains(Term, Term) -> true;
contains(Tuple, Part) when is_tuple(Tuple) -> contains(tuple_to_list(Tuple), Part);
contains([H | T], Part) -> contains(H, Part) orelse contains(T, Part);
contains(_, _) -> false.

-spec collect(reference()) -> {ok, list()} | {error, term()}.
collect(Ref) ->
    collect(Ref, []).

-spec collect(reference(), list()) -> {ok, list()} | {error, term()}.
collect(Ref, Acc) ->
    receive
        {py_stream, Ref, {data, Item}} -> collect(Ref, [Item | Acc]);
        {py_stream, Ref, done} -> {ok, lists:reverse(Acc)};
        {py_stream, Ref, {error, Reason}} -> {error, {lists:reverse(Acc), Reason}}
    after 10000 -> {error, {timeout, lists:reverse(Acc)}}
    end.

-spec drain_until_cancelled(reference()) -> ok.
drain_until_cancelled(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> drain_until_cancelled(Ref);
        {py_stream, Ref, {error, cancelled}} -> ok
    after 10000 -> ct:fail(not_cancelled)
    end.

-spec porting_blocks() -> {[binary()], non_neg_integer()}.
porting_blocks() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Doc = filename:join([filename:dirname(filename:dirname(Source)), "docs", "porting.md"]),
    {ok, Text} = file:read_file(Doc),
    {blocks(string:split(Text, <<"\n">>, all), none, []),
     length(binary:matches(Text, <<"<!-- run -->">>))}.

-spec blocks([binary()], term(), [binary()]) -> [binary()].
blocks([], _, Acc) ->
    lists:reverse(Acc);
blocks([<<"<!-- run -->">> | Rest], none, Acc) ->
    blocks(Rest, marked, Acc);
blocks([<<"```erlang">> | Rest], marked, Acc) ->
    blocks(Rest, {in, []}, Acc);
blocks([<<"```">> | Rest], {in, Lines}, Acc) ->
    blocks(Rest, none, [iolist_to_binary(lists:join(<<"\n">>, lists:reverse(Lines))) | Acc]);
blocks([Line | Rest], {in, Lines}, Acc) ->
    blocks(Rest, {in, [Line | Lines]}, Acc);
blocks([_ | Rest], marked, Acc) ->
    blocks(Rest, marked, Acc);
blocks([_ | Rest], none, Acc) ->
    blocks(Rest, none, Acc).

%% A block is a sequence of forms, each ending with a full stop.
-spec eval_block(binary()) -> {term(), term()}.
eval_block(Block) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Block)),
    lists:foldl(fun(Form, {_, Bindings}) ->
                        {ok, Exprs} = erl_parse:parse_exprs(Form),
                        {value, V, B} = erl_eval:exprs(Exprs, Bindings),
                        {V, B}
                end, {undefined, erl_eval:new_bindings()}, forms(Tokens, [], [])).

-spec forms(list(), list(), list()) -> list().
forms([], [], Acc) -> lists:reverse(Acc);
forms([{dot, _} = Dot | Rest], Form, Acc) -> forms(Rest, [], [lists:reverse([Dot | Form]) | Acc]);
forms([T | Rest], Form, Acc) -> forms(Rest, [T | Form], Acc).
