-module(py_cluster_tests).

-include_lib("eunit/include/eunit.hrl").

%% Some tests call the API with wrong options on purpose.
-dialyzer([no_fail_call, no_return]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

%% pyport_cluster_route: least loaded.

-spec least_loaded_picks_fewest_pending_test() -> term().
least_loaded_picks_fewest_pending_test() ->
    Rows = [{{a@h, 1}, 5, 0}, {{b@h, 1}, 2, 0}, {{b@h, 2}, 7, 0}],
    ?assertEqual({b@h, 1}, pyport_cluster_route:least_loaded(Rows, a@h)).

-spec least_loaded_counts_what_was_sent_since_test() -> term().
least_loaded_counts_what_was_sent_since_test() ->
    Rows = [{{a@h, 1}, 5, 0}, {{b@h, 1}, 2, 4}],
    ?assertEqual({a@h, 1}, pyport_cluster_route:least_loaded(Rows, a@h)).

-spec least_loaded_prefers_local_at_equal_load_test() -> term().
least_loaded_prefers_local_at_equal_load_test() ->
    Rows = [{{b@h, 1}, 3, 0}, {{a@h, 2}, 3, 0}, {{c@h, 1}, 3, 0}],
    ?assertEqual([{a@h, 2}],
                 lists:usort([pyport_cluster_route:least_loaded(Rows, a@h) || _ <- lists:seq(1, 50)])).

-spec least_loaded_breaks_ties_at_random_test() -> term().
least_loaded_breaks_ties_at_random_test() ->
    Rows = [{{b@h, 1}, 0, 0}, {{c@h, 1}, 0, 0}, {{a@h, 1}, 9, 0}],
    ?assertEqual([{b@h, 1}, {c@h, 1}],
                 lists:usort([pyport_cluster_route:least_loaded(Rows, a@h) || _ <- lists:seq(1, 200)])).

-spec least_loaded_avoids_restarting_loops_test() -> term().
least_loaded_avoids_restarting_loops_test() ->
    Rows = [{{a@h, 1}, restarting, 0}, {{b@h, 1}, 1000, 0}],
    ?assertEqual({b@h, 1}, pyport_cluster_route:least_loaded(Rows, a@h)),
    %% Only when every loop restarts: the loop waited for.
    ?assertEqual({a@h, 1}, pyport_cluster_route:least_loaded([{{a@h, 1}, restarting, 0}], a@h)).

-spec least_loaded_of_nothing_test() -> term().
least_loaded_of_nothing_test() ->
    ?assertEqual(none, pyport_cluster_route:least_loaded([], a@h)).

%% pyport_cluster_route: by key.

-spec by_key_is_stable_test() -> term().
by_key_is_stable_test() ->
    Rows = rows([a@h, b@h, c@h], 2),
    [?assertEqual(pyport_cluster_route:by_key(K, Rows), pyport_cluster_route:by_key(K, lists:reverse(Rows)))
     || K <- lists:seq(1, 100)].

-spec by_key_ignores_load_test() -> term().
by_key_ignores_load_test() ->
    Rows = rows([a@h, b@h], 2),
    Loaded = [{T, 1000, 50} || {T, _, _} <- Rows],
    [?assertEqual(pyport_cluster_route:by_key(K, Rows), pyport_cluster_route:by_key(K, Loaded))
     || K <- lists:seq(1, 100)].

-spec by_key_spreads_test() -> term().
by_key_spreads_test() ->
    Rows = rows([a@h, b@h, c@h], 2),
    Targets = [pyport_cluster_route:by_key(K, Rows) || K <- lists:seq(1, 600)],
    ?assertEqual(lists:sort([T || {T, _, _} <- Rows]), lists:usort(Targets)).

-spec by_key_moves_only_to_a_new_node_test() -> term().
by_key_moves_only_to_a_new_node_test() ->
    Before = rows([a@h, b@h, c@h], 2),
    After = Before ++ rows([d@h], 2),
    Moves = [{pyport_cluster_route:by_key(K, Before), pyport_cluster_route:by_key(K, After)}
             || K <- lists:seq(1, 600)],
    Moved = [To || {From, To} <- Moves, From =/= To],
    ?assert(Moved =/= []),
    ?assertEqual([d@h], lists:usort([N || {N, _} <- Moved])).

-spec by_key_moves_only_a_leaving_nodes_keys_test() -> term().
by_key_moves_only_a_leaving_nodes_keys_test() ->
    Before = rows([a@h, b@h, c@h], 2),
    After = rows([a@h, c@h], 2),
    [case pyport_cluster_route:by_key(K, Before) of
         {b@h, _} -> ok;
         Kept -> ?assertEqual(Kept, pyport_cluster_route:by_key(K, After))
     end || K <- lists:seq(1, 600)].

-spec by_key_of_nothing_test() -> term().
by_key_of_nothing_test() ->
    ?assertEqual(none, pyport_cluster_route:by_key(k, [])).

%% py_cluster: options, checked before anything is sent.

-spec bad_options_test() -> term().
bad_options_test() ->
    ?assertError({badarg, {options, _}}, py_cluster:run(m, f, [], #{node => any, key => 1})),
    ?assertError({badarg, {option, nodes, _}}, py_cluster:run(m, f, [], #{nodes => any})),
    ?assertError({badarg, {node, "b@h"}}, py_cluster:run(m, f, [], #{node => "b@h"})),
    ?assertError({badarg, {options, []}}, py_cluster:run(m, f, [], [])),
    ?assertError({badarg, {timeout, -1}}, py_cluster:run(m, f, [], #{timeout => -1})),
    ?assertError({badarg, {option, timeout, _}}, py_cluster:create_task(m, f, [], #{timeout => 1})),
    ?assertError({badarg, {args, x}}, py_cluster:spawn_task(m, f, x, #{})),
    ?assertError({badarg, {option, kwargs, _}}, py_cluster:route(#{kwargs => #{}})),
    ?assertError({badarg, {task, x}}, py_cluster:await(x)).

-spec not_started_test() -> term().
not_started_test() ->
    %% No application: no member, no loop.
    ?assertEqual({error, loop_unavailable}, py_cluster:run(m, f, [])),
    ?assertEqual({error, loop_unavailable}, py_cluster:run(m, f, [], #{key => 1})),
    ?assertEqual({error, loop_unavailable}, py_cluster:await(py_cluster:create_task(m, f, []))),
    ?assertEqual([], py_cluster:nodes()),
    ?assertEqual(#{}, py_cluster:loads()).

%% Settings.

-spec cluster_settings_test() -> term().
cluster_settings_test() ->
    _ = application:load(pyport),
    try
        ?assertEqual({ok, #{pool => default, load_interval_ms => 100}}, pyport_config:cluster()),
        ok = application:set_env(pyport, cluster_pool, <<"eu">>),
        ok = application:set_env(pyport, cluster_load_interval_ms, 250),
        ?assertEqual({ok, #{pool => <<"eu">>, load_interval_ms => 250}}, pyport_config:cluster()),
        ?assertEqual([], pyport_config:unknown_keys(application:get_all_env(pyport))),
        ok = application:set_env(pyport, cluster_load_interval_ms, 0),
        ?assertEqual({error, {bad_config, {cluster_load_interval_ms, 0}}}, pyport_config:cluster())
    after
        application:unset_env(pyport, cluster_pool),
        application:unset_env(pyport, cluster_load_interval_ms)
    end.

%% Internal.

rows(Nodes, Loops) ->
    [{{N, I}, 0, 0} || N <- Nodes, I <- lists:seq(1, Loops)].
