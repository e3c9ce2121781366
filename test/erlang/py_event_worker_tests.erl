-module(py_event_worker_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec port_args_without_path_test() -> term().
port_args_without_path_test() ->
    ?assertEqual(["port", "--max-packet", "1024"],
                 py_event_worker:port_args(1024, [])).

-spec port_args_repeat_path_per_entry_test() -> term().
port_args_repeat_path_per_entry_test() ->
    ?assertEqual(["port", "--max-packet", "67108864",
                  "--path", "/a", "--path", "/b c"],
                 py_event_worker:port_args(67108864, ["/a", <<"/b c">>])).

-spec executable_is_in_priv_test() -> term().
executable_is_in_priv_test() ->
    ?assertEqual("pyport", filename:basename(py_event_worker:executable())),
    ?assertEqual("priv", filename:basename(
                           filename:dirname(py_event_worker:executable()))).
