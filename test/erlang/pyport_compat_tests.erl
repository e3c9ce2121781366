%% pyport_compat's pure parts: keyword lists as kwargs, none_atom, eval's
%% options.
-module(pyport_compat_tests).

-include_lib("eunit/include/eunit.hrl").

-dialyzer([no_fail_call]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec keyword_list_becomes_a_map_test() -> term().
keyword_list_becomes_a_map_test() ->
    ?assertEqual(#{a => 1, b => 2}, pyport_compat:kwargs([{a, 1}, {b, 2}])),
    ?assertEqual(#{a => 1}, pyport_compat:kwargs(#{a => 1})).

-spec duplicate_keyword_is_refused_test() -> term().
duplicate_keyword_is_refused_test() ->
    ?assertError({badarg, {kwargs, [{a, 1}, {a, 2}]}}, pyport_compat:kwargs([{a, 1}, {a, 2}])).

-spec improper_keyword_lists_are_left_for_the_caller_to_refuse_test() -> term().
improper_keyword_lists_are_left_for_the_caller_to_refuse_test() ->
    ?assertError({badarg, {kwargs, [{a, 1}, x]}}, pyport_compat:kwargs([{a, 1}, x])),
    ?assertEqual(#{}, pyport_compat:kwargs([])),
    ?assertEqual([{<<"a">>, 1}], pyport_compat:kwargs([{<<"a">>, 1}])),
    ?assertEqual(not_kwargs, pyport_compat:kwargs(not_kwargs)).

-spec none_atom_test() -> term().
none_atom_test() ->
    [?assertEqual(A, pyport_compat:none_atom(A)) || A <- [none, nil, undefined]],
    ?assertError({badarg, {none_atom, null}}, pyport_compat:none_atom(null)),
    ?assertEqual(#{none_atom => <<"nil">>, x => 1},
                 pyport_compat:none_atom_opt(#{none_atom => nil}, #{x => 1})),
    ?assertEqual(#{x => 1}, pyport_compat:none_atom_opt(#{}, #{x => 1})).

-spec eval_opts_test() -> term().
eval_opts_test() ->
    ?assertEqual(#{}, pyport_compat:eval_opts(#{timeout => 5})),
    ?assertEqual(#{locals => #{x => 1, <<"y">> => 2}},
                 pyport_compat:eval_opts(#{locals => #{x => 1, <<"y">> => 2}})),
    ?assertEqual(#{locals => #{x => 1}, none_atom => <<"nil">>},
                 pyport_compat:eval_opts(#{locals => [{x, 1}], none_atom => nil})),
    ?assertError({badarg, {locals, #{1 := 2}}}, pyport_compat:eval_opts(#{locals => #{1 => 2}})),
    ?assertError({badarg, {locals, nope}}, pyport_compat:eval_opts(#{locals => nope})).

-spec none_atom_is_a_port_option_test() -> term().
none_atom_is_a_port_option_test() ->
    Base = #{max_packet => 1, python_path => []},
    ?assertNot(lists:member("--none-atom", pyport_config:port_args(Base#{none_atom => none}))),
    Args = pyport_config:port_args(Base#{none_atom => nil}),
    ?assertMatch([_, "nil" | _], lists:dropwhile(fun(A) -> A =/= "--none-atom" end, Args)).

-spec registered_request_is_a_packet_test() -> term().
registered_request_is_a_packet_test() ->
    Bin = term_to_binary({registered, 7, <<"f">>}),
    ?assertMatch({ok, {registered, 7, <<"f">>}, 0}, pyport_wire:decode(Bin, 1 bsl 20, 10)).

-spec pool_routes_by_function_then_module_test() -> term().
pool_routes_by_function_then_module_test() ->
    ?assertEqual(default, pyport_pool_route:lookup(json, dumps)),
    try
        ok = pyport_pool_route:register(io, json),
        ok = pyport_pool_route:register(cpu, {<<"json">>, <<"loads">>}),
        ?assertEqual({ok, io}, pyport_pool_route:lookup(json, dumps)),
        ?assertEqual({ok, io}, pyport_pool_route:lookup(<<"json">>, dumps)),
        ?assertEqual({ok, cpu}, pyport_pool_route:lookup(json, loads)),
        ?assertEqual(default, pyport_pool_route:lookup(math, sqrt)),
        ?assertEqual(default, pyport_pool_route:lookup(json, "not a name")),
        ok = pyport_pool_route:unregister({json, loads}),
        ?assertEqual({ok, io}, pyport_pool_route:lookup(json, loads))
    after
        pyport_pool_route:unregister(json),
        pyport_pool_route:unregister({json, loads})
    end,
    ?assertEqual(default, pyport_pool_route:lookup(json, dumps)).
