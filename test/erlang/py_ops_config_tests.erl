%% Named pools' options (pyport_config:pool/1), loops beyond a pool's
%% size, venv specs (pyport_venv:is_spec/1) and task timings (pyport_ops_stats).
-module(py_ops_config_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec pool_defaults_test() -> term().
pool_defaults_test() ->
    ?assertEqual({ok, p, 1, #{}}, pyport_config:pool(#{name => p})),
    ?assertEqual({ok, p, 3, #{max_pending => 5, loops => #{3 => #{max_pending => 1}}}},
                 pyport_config:pool(#{name => p, size => 3, max_pending => 5,
                                      loops => #{3 => #{max_pending => 1}}})).

-spec pool_refusals_test() -> term().
pool_refusals_test() ->
    ?assertEqual({error, {bad_config, {unknown_key, pool_size}}},
                 pyport_config:pool(#{name => p, pool_size => 2})),
    ?assertEqual({error, {bad_config, {{loops, 0}, {no_such_loop, 2}}}},
                 pyport_config:pool(#{name => p, size => 2, loops => #{0 => #{}}})),
    ?assertEqual({error, {bad_config, {{loops, 1, pythonpath}, "/x"}}},
                 pyport_config:pool(#{name => p, loops => #{1 => #{pythonpath => "/x"}}})),
    ?assertEqual({error, {bad_config, {size, two}}}, pyport_config:pool(#{name => p, size => two})),
    ?assertEqual({error, {bad_config, {allow_other_python, yes}}},
                 pyport_config:pool(#{name => p, allow_other_python => yes})),
    ?assertMatch({error, {bad_config, {pool, _}}}, pyport_config:pool(#{name => "p"})),
    ?assertMatch({error, {bad_config, {pool, _}}}, pyport_config:pool(#{size => 1})).

-spec loops_beyond_test() -> term().
loops_beyond_test() ->
    ?assertEqual([], pyport_config:loops_beyond(#{1 => #{}, 2 => #{}}, 2)),
    ?assertEqual([0, 5, x], pyport_config:loops_beyond(#{x => #{}, 5 => #{}, 0 => #{}, 1 => #{}}, 1)),
    ?assertEqual([], pyport_config:loops_beyond(not_a_map, 1)).

-spec venv_spec_test() -> term().
venv_spec_test() ->
    ?assert(pyport_venv:is_spec(#{path => "/v"})),
    ?assert(pyport_venv:is_spec(#{path => <<"/v">>, requirements => ["a==1", <<"b">>],
                              requirements_file => "/r.txt", index_url => "http://i",
                              pip_args => ["--no-index"], timeout_ms => 1000})),
    ?assertNot(pyport_venv:is_spec(#{path => "/v", requirement => ["a"]})),
    ?assertNot(pyport_venv:is_spec(#{path => ""})),
    ?assertNot(pyport_venv:is_spec(#{path => "/v", requirements => "a"})),
    ?assertNot(pyport_venv:is_spec(#{path => "/v", timeout_ms => 0})),
    ?assertNot(pyport_venv:is_spec(#{requirements => []})).

-spec stats_test() -> term().
stats_test() ->
    ?assertMatch(#{count := 0, latency_us_avg := 0}, pyport_ops_stats:read(undefined)),
    Ref = pyport_ops_stats:new(),
    ok = pyport_ops_stats:record(Ref, 100, 10),
    ok = pyport_ops_stats:record(Ref, 300, 30),
    ?assertEqual(#{count => 2, latency_us_avg => 200, latency_us_max => 300,
                   queue_us_avg => 20, queue_us_max => 30}, pyport_ops_stats:read(Ref)),
    ?assertEqual(ok, pyport_ops_stats:record(undefined, 1, 1)).
