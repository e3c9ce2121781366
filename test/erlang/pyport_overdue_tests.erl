-module(pyport_overdue_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-define(GRACE, 1000).

-spec check_test_() -> term().
check_test_() ->
    {foreach, fun() -> ets:new(pending, [set, public]) end, fun ets:delete/1,
     [fun(T) -> ?_assertEqual(none, pyport_overdue:check(T, ms_now(), ?GRACE)) end,
      fun(T) ->
              %% A live task is no concern of the overdue check.
              true = ets:insert(T, {make_ref(), self()}),
              ?_assertEqual(none, pyport_overdue:check(T, ms_now(), ?GRACE))
      end,
      fun(T) ->
              At = ms_now() + 500,
              true = ets:insert(T, {make_ref(), {cancelled, At}}),
              ?_assertEqual({wait, At}, pyport_overdue:check(T, ms_now() - 5000, ?GRACE))
      end,
      fun(T) ->
              %% Overdue, but the port sent something 100 ms ago: it is
              %% making progress, so judge again a grace after that.
              Last = ms_now() - 100,
              true = ets:insert(T, {make_ref(), {cancelled, ms_now() - 10}}),
              ?_assertEqual({wait, Last + ?GRACE}, pyport_overdue:check(T, Last, ?GRACE))
      end,
      fun(T) ->
              %% Overdue and silent for a whole grace period.
              true = ets:insert(T, {make_ref(), {cancelled, ms_now() - 10}}),
              true = ets:insert(T, {make_ref(), {cancelled, ms_now() - 20}}),
              true = ets:insert(T, {make_ref(), {cancelled, ms_now() + 5000}}),
              ?_assertEqual({overdue, 2}, pyport_overdue:check(T, ms_now() - 2 * ?GRACE, ?GRACE))
      end]}.

-spec mark_test() -> term().
mark_test() ->
    T = ets:new(pending, [set, public]),
    Ref = make_ref(),
    true = ets:insert(T, {Ref, self()}),
    At = pyport_overdue:mark(T, Ref, ?GRACE),
    ?assert(is_integer(At)),
    ?assertEqual([{Ref, {cancelled, At}}], ets:lookup(T, Ref)),
    %% Finished (taken by the worker), or the table gone with it.
    ?assertEqual(false, pyport_overdue:mark(T, make_ref(), ?GRACE)),
    true = ets:delete(T),
    ?assertEqual(false, pyport_overdue:mark(T, Ref, ?GRACE)).

ms_now() ->
    erlang:monotonic_time(millisecond).

-spec forget_test() -> term().
forget_test() ->
    T = ets:new(pending, [set, public]),
    Now = ms_now(),
    Old = make_ref(),
    true = ets:insert(T, [{Old, {cancelled, Now - 10 * ?GRACE - 1}},
                          {make_ref(), {cancelled, Now - ?GRACE}},
                          {make_ref(), self()}]),
    ?assertEqual(1, pyport_overdue:forget(T, Now, ?GRACE)),
    ?assertEqual([], ets:lookup(T, Old)),
    ?assertEqual(2, ets:info(T, size)),
    true = ets:delete(T).
