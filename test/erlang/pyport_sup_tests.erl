-module(pyport_sup_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec pool_size_test_() -> term().
pool_size_test_() ->
    {foreach,
     fun() -> application:unset_env(pyport, event_loop_pool_size) end,
     fun(_) -> application:unset_env(pyport, event_loop_pool_size) end,
     [?_assertEqual({ok, erlang:system_info(schedulers)},
                    pyport_sup:pool_size()),
      fun() ->
              application:set_env(pyport, event_loop_pool_size, 3),
              ?assertEqual({ok, 3}, pyport_sup:pool_size())
      end,
      fun() ->
              application:set_env(pyport, event_loop_pool_size, 0),
              ?assertEqual({error, {bad_config, {event_loop_pool_size, 0}}},
                           pyport_sup:pool_size())
      end]}.
