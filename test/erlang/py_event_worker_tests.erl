-module(py_event_worker_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec port_args_without_path_test() -> term().
port_args_without_path_test() ->
    ?assertEqual(["port", "--max-packet", "1024"],
                 py_event_worker:port_args(#{max_packet => 1024,
                                             python_path => []})).

-spec port_args_repeat_path_per_entry_test() -> term().
port_args_repeat_path_per_entry_test() ->
    ?assertEqual(["port", "--max-packet", "67108864",
                  "--path", "/a", "--path", "/b c"],
                 py_event_worker:port_args(#{max_packet => 67108864,
                                             max_memory_mb => infinity,
                                             python_path => ["/a", <<"/b c">>]})).

-spec port_args_with_memory_limit_test() -> term().
port_args_with_memory_limit_test() ->
    ?assertEqual(["port", "--max-packet", "100", "--max-memory-mb", "512",
                  "--path", "/p"],
                 py_event_worker:port_args(#{max_packet => 100,
                                             max_memory_mb => 512,
                                             python_path => ["/p"]})).

-spec executable_is_in_priv_test() -> term().
executable_is_in_priv_test() ->
    ?assertEqual("pyport", filename:basename(py_event_worker:executable())),
    ?assertEqual("priv", filename:basename(
                           filename:dirname(py_event_worker:executable()))).
