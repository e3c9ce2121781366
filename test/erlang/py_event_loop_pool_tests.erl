-module(py_event_loop_pool_tests).

-include_lib("eunit/include/eunit.hrl").

%% Some tests call the API with wrong types on purpose, to check the
%% errors it raises.
-dialyzer([no_fail_call, no_improper_lists]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec loop_index_is_stable_for_a_pid_test() -> term().
loop_index_is_stable_for_a_pid_test() ->
    Pid = self(),
    I = py_event_loop_pool:loop_index(Pid, 8),
    ?assertEqual(I, py_event_loop_pool:loop_index(Pid, 8)),
    ?assertEqual(erlang:phash2(Pid, 8) + 1, I).

-spec loop_index_is_within_range_test() -> term().
loop_index_is_within_range_test() ->
    Pids = [spawn(fun() -> ok end) || _ <- lists:seq(1, 200)],
    Indices = [py_event_loop_pool:loop_index(P, 4) || P <- Pids],
    ?assert(lists:all(fun(I) -> I >= 1 andalso I =< 4 end, Indices)),
    %% 200 processes over 4 loops: every loop gets some.
    ?assertEqual([1, 2, 3, 4], lists:usort(Indices)).

-spec single_loop_always_picks_one_test() -> term().
single_loop_always_picks_one_test() ->
    ?assertEqual(1, py_event_loop_pool:loop_index(self(), 1)).

-spec loop_index_rejects_a_zero_sized_pool_test() -> term().
loop_index_rejects_a_zero_sized_pool_test() ->
    ?assertError(function_clause, py_event_loop_pool:loop_index(self(), 0)).
