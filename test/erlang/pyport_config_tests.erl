-module(pyport_config_tests).

-include_lib("eunit/include/eunit.hrl").

%% The logger handler the start-up warning test installs.
-export([log/2]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec port_args_without_path_test() -> term().
port_args_without_path_test() ->
    ?assertEqual(["port", "--max-packet", "1024"],
                 pyport_config:port_args(#{max_packet => 1024,
                                             python_path => []})).

-spec port_args_repeat_path_per_entry_test() -> term().
port_args_repeat_path_per_entry_test() ->
    ?assertEqual(["port", "--max-packet", "67108864",
                  "--path", "/a", "--path", "/b c"],
                 pyport_config:port_args(#{max_packet => 67108864,
                                             max_memory_mb => infinity,
                                             python_path => ["/a", <<"/b c">>]})).

-spec port_args_with_memory_limit_test() -> term().
port_args_with_memory_limit_test() ->
    ?assertEqual(["port", "--max-packet", "100", "--max-memory-mb", "512",
                  "--path", "/p"],
                 pyport_config:port_args(#{max_packet => 100,
                                             max_memory_mb => 512,
                                             python_path => ["/p"]})).

-spec port_args_tell_the_port_the_output_limit_test() -> term().
port_args_tell_the_port_the_output_limit_test() ->
    ?assertEqual(["port", "--max-packet", "100", "--max-output-packet", "4096"],
                 pyport_config:port_args(#{max_packet => 100,
                                             max_output_packet => 4096,
                                             python_path => []})).

-spec executable_is_in_priv_test() -> term().
executable_is_in_priv_test() ->
    ?assertEqual("pyport", filename:basename(pyport_config:executable())),
    ?assertEqual("priv", filename:basename(
                           filename:dirname(pyport_config:executable()))).
-spec pool_size_test_() -> term().
pool_size_test_() ->
    {foreach,
     fun() -> application:unset_env(pyport, event_loop_pool_size) end,
     fun(_) -> application:unset_env(pyport, event_loop_pool_size) end,
     [?_assertEqual({ok, erlang:system_info(schedulers)},
                    pyport_config:pool_size()),
      fun() ->
              application:set_env(pyport, event_loop_pool_size, 3),
              ?assertEqual({ok, 3}, pyport_config:pool_size())
      end,
      fun() ->
              application:set_env(pyport, event_loop_pool_size, 0),
              ?assertEqual({error, {bad_config, {event_loop_pool_size, 0}}},
                           pyport_config:pool_size())
      end]}.

-spec unknown_keys_names_misspelt_keys_test() -> term().
unknown_keys_names_misspelt_keys_test() ->
    ?assertEqual([], pyport_config:unknown_keys([])),
    ?assertEqual([], pyport_config:unknown_keys(
                       [{python_path, ["/p"]}, {event_loop_pool_size, 2},
                        {executable, "/bin/true"}, {max_pending, 10},
                        {loops, #{1 => #{venv => "/v", output => stderr}}}])),
    ?assertEqual([pythonpath, pool_size],
                 pyport_config:unknown_keys([{pythonpath, ["/p"]},
                                             {max_packet, 100},
                                             {pool_size, 4}])),
    %% A loop's entry takes per-loop settings only.
    ?assertEqual([{loops, 2, colour}, {loops, 2, event_loop_pool_size}],
                 pyport_config:unknown_keys(
                   [{loops, #{1 => #{max_atoms => 5},
                              2 => #{colour => red, event_loop_pool_size => 1}}}])).

%% The warning comes once, from the application's start, even when the
%% start then fails (here on purpose, so that no port is started).
-spec unknown_keys_are_warned_about_at_start_test() -> term().
unknown_keys_are_warned_about_at_start_test() ->
    _ = application:stop(pyport),
    _ = application:load(pyport),
    Keys = [pythonpath, pool_size, event_loop_pool_size],
    ok = application:set_env(pyport, pythonpath, ["/p"]),
    ok = application:set_env(pyport, pool_size, 4),
    ok = application:set_env(pyport, event_loop_pool_size, 0),
    ok = logger:add_handler(?MODULE, ?MODULE, #{config => #{pid => self()}}),
    try
        ?assertMatch({error, _}, application:start(pyport)),
        Warnings = warnings(),
        ?assertMatch([_], Warnings),
        [#{meta := #{pyport_unknown_keys := Unknown}}] = Warnings,
        ?assertEqual([pool_size, pythonpath], lists:sort(Unknown))
    after
        ok = logger:remove_handler(?MODULE),
        [application:unset_env(pyport, K) || K <- Keys]
    end.

-spec a_clean_environment_has_no_unknown_keys_test() -> term().
a_clean_environment_has_no_unknown_keys_test() ->
    _ = application:load(pyport),
    ?assertEqual([], pyport_config:unknown_keys(application:get_all_env(pyport))).

%% logger handler callback: hands each warning to the test process.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{level := warning} = Event, #{config := #{pid := Pid}}) ->
    Pid ! {?MODULE, Event},
    ok;
log(_, _) ->
    ok.

-spec warnings() -> [logger:log_event()].
warnings() ->
    receive
        {?MODULE, Event} -> [Event | warnings()]
    after 200 ->
        []
    end.
