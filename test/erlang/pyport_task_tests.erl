-module(pyport_task_tests).

-include_lib("eunit/include/eunit.hrl").

%% Some tests call the API with wrong types on purpose, to check the
%% errors it raises.
-dialyzer([no_fail_call, no_improper_lists]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec check_call_accepts_atoms_and_binaries_test() -> term().
check_call_accepts_atoms_and_binaries_test() ->
    ?assertEqual(ok, pyport_task:check_call(math, sqrt, [16.0], #{})),
    ?assertEqual(ok, pyport_task:check_call(<<"os.path">>, <<"join">>,
                                              [], #{sep => <<"/">>})).

-spec check_call_rejects_each_bad_argument_test_() -> term().
check_call_rejects_each_bad_argument_test_() ->
    [?_assertError({badarg, {module, "math"}},
                   pyport_task:check_call("math", sqrt, [], #{})),
     ?_assertError({badarg, {module, 42}},
                   pyport_task:check_call(42, sqrt, [], #{})),
     ?_assertError({badarg, {function, {sqrt}}},
                   pyport_task:check_call(math, {sqrt}, [], #{})),
     ?_assertError({badarg, {args, 16.0}},
                   pyport_task:check_call(math, sqrt, 16.0, #{})),
     ?_assertError({badarg, {args, [1 | 2]}},
                   pyport_task:check_call(math, sqrt, [1 | 2], #{})),
     ?_assertError({badarg, {kwargs, [{a, 1}]}},
                   pyport_task:check_call(math, sqrt, [], [{a, 1}]))].

-spec run_options_defaults_test() -> term().
run_options_defaults_test() ->
    ?assertEqual({5000, #{}}, pyport_task:run_options(#{})).

-spec run_options_reads_timeout_and_kwargs_test() -> term().
run_options_reads_timeout_and_kwargs_test() ->
    ?assertEqual({250, #{a => 1}},
                 pyport_task:run_options(#{timeout => 250, kwargs => #{a => 1}})),
    ?assertEqual({infinity, #{}},
                 pyport_task:run_options(#{timeout => infinity})),
    ?assertEqual({0, #{}}, pyport_task:run_options(#{timeout => 0})).

-spec run_options_rejects_bad_values_test_() -> term().
run_options_rejects_bad_values_test_() ->
    [?_assertError({badarg, {timeout, -1}},
                   pyport_task:run_options(#{timeout => -1})),
     ?_assertError({badarg, {timeout, 1.5}},
                   pyport_task:run_options(#{timeout => 1.5})),
     %% A keyword list ([] included) is kwargs (pyport_compat); a list of
     %% anything else is not.
     ?_assertError({badarg, {kwargs, [1]}},
                   pyport_task:run_options(#{kwargs => [1]})),
     ?_assertEqual({5000, #{a => 1}}, pyport_task:run_options(#{kwargs => [{a, 1}]})),
     ?_assertError({badarg, {option, timout, 100}},
                   pyport_task:run_options(#{timout => 100})),
     ?_assertError({badarg, {options, [{timeout, 100}]}},
                   pyport_task:run_options([{timeout, 100}]))].

-spec task_opts_carries_the_deadline_test() -> term().
task_opts_carries_the_deadline_test() ->
    ?assertEqual(#{deadline_ms => 1500}, pyport_task:task_opts(1500)),
    ?assertEqual(#{}, pyport_task:task_opts(infinity)).

%% Past what `receive ... after` takes, the caller's chunked wait is the
%% deadline; Python is not handed an integer it may not hold.
-spec task_opts_leaves_out_deadlines_beyond_after_test() -> term().
task_opts_leaves_out_deadlines_beyond_after_test() ->
    ?assertEqual(#{deadline_ms => 4294967295}, pyport_task:task_opts(4294967295)),
    ?assertEqual(#{}, pyport_task:task_opts(4294967296)),
    ?assertEqual(#{}, pyport_task:task_opts(1 bsl 1100)).

-spec await_of_an_unknown_reference_is_an_error_not_a_wait_test() -> term().
await_of_an_unknown_reference_is_an_error_not_a_wait_test() ->
    ?assertEqual({error, unknown_task}, py_event_loop:await(make_ref(), infinity)).

-spec await_rejects_non_references_and_bad_timeouts_test_() -> term().
await_rejects_non_references_and_bad_timeouts_test_() ->
    [?_assertError({badarg, {task, foo}}, py_event_loop:await(foo)),
     ?_assertError({badarg, {timeout, soon}},
                   py_event_loop:await(make_ref(), soon))].

%% Without the application there is no loop: the API reports it the same
%% way as a loop whose port just died, and create_task still returns a
%% reference so that error handling stays in one place (await).
-spec api_without_application_reports_loop_unavailable_test_() -> term().
api_without_application_reports_loop_unavailable_test_() ->
    {setup,
     fun() -> _ = application:stop(pyport) end,
     [?_assertEqual({error, loop_unavailable},
                    py_event_loop:run(math, sqrt, [16.0])),
      ?_assertEqual({error, loop_unavailable},
                    py_event_loop:await(py_event_loop:create_task(math, sqrt, [4.0]))),
      ?_assertEqual({error, loop_unavailable},
                    py_event_loop:spawn_task(math, sqrt, [4.0])),
      ?_assertEqual({error, loop_unavailable},
                    py_event_loop_pool:run(math, sqrt, [16.0])),
      ?_assertEqual({error, not_started}, py_event_loop_pool:get_loop()),
      ?_assertMatch(#{supported := false, num_loops := 0},
                    py_event_loop_pool:get_stats())]}.

-spec bad_arguments_fail_at_the_call_site_test_() -> term().
bad_arguments_fail_at_the_call_site_test_() ->
    [?_assertError({badarg, {args, x}}, py_event_loop:run(math, sqrt, x)),
     ?_assertError({badarg, {kwargs, x}},
                   py_event_loop:create_task(math, sqrt, [], x)),
     ?_assertError({badarg, {module, "m"}},
                   py_event_loop:spawn_task("m", f, [])),
     ?_assertError({badarg, {loop, 1}},
                   py_event_loop:run(1, math, sqrt, [], #{})),
     ?_assertError({badarg, {option, retries, 3}},
                   py_event_loop_pool:run(math, sqrt, [1.0], #{retries => 3}))].
