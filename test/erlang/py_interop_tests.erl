-module(py_interop_tests).

-include_lib("eunit/include/eunit.hrl").

%% Some tests pass bad types on purpose, to check the errors.
-dialyzer([no_fail_call, no_return, no_improper_lists]).

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec python_safe_keeps_convertible_terms_test() -> term().
python_safe_keeps_convertible_terms_test() ->
    [?assertEqual(T, py_callback:python_safe(T))
     || T <- [badarith, 1, 2.5, <<"b">>, self(), make_ref(), [1, [2]], {a, {b}},
              #{k => [v], {1, <<"x">>} => #{}}, []]].

-spec python_safe_prints_what_python_cannot_take_test() -> term().
python_safe_prints_what_python_cannot_take_test() ->
    F = fun() -> ok end,
    [begin
         Text = py_callback:python_safe(T),
         ?assert(is_binary(Text)),
         ?assertEqual(iolist_to_binary(io_lib:format("~0tp", [T])), Text)
     end || T <- [F, {badfun, F}, [1 | 2], <<1:3>>, #{[1] => x}, #{#{} => x},
                  hd(erlang:ports()), deep(200)]].

-spec deliver_test_() -> term().
deliver_test_() ->
    {setup,
     fun() -> ok end,
     [fun() ->
              ?assertEqual({ok, true}, py_callback:deliver(self(), hello)),
              ?assertEqual(hello, receive M -> M after 1000 -> none end)
      end,
      fun() ->
              {Dead, MRef} = spawn_monitor(fun() -> ok end),
              receive {'DOWN', MRef, process, Dead, _} -> ok end,
              ?assertEqual({error, noproc}, py_callback:deliver(Dead, x))
      end,
      fun() ->
              true = register(py_interop_tests_name, self()),
              try
                  ?assertEqual({ok, true}, py_callback:deliver(py_interop_tests_name, n)),
                  ?assertEqual({ok, true},
                               py_callback:deliver({py_interop_tests_name, node()}, m)),
                  ?assertEqual([n, m], [receive M -> M after 1000 -> none end
                                        || _ <- [1, 2]])
              after
                  unregister(py_interop_tests_name)
              end,
              ?assertEqual({error, noproc}, py_callback:deliver(py_interop_tests_name, x))
      end,
      fun() ->
              Alias = alias(),
              ?assertEqual({ok, true}, py_callback:deliver(Alias, via_alias)),
              ?assertEqual(via_alias, receive M -> M after 1000 -> none end),
              unalias(Alias)
      end,
      %% Another node never makes the sender wait: not connected, refused.
      ?_assertEqual({error, noconnection},
                    py_callback:deliver({py_interop_tests_name, 'nobody@nohost'}, x)),
      ?_assertEqual({error, badarg}, py_callback:deliver(<<"name">>, x)),
      ?_assertEqual({error, badarg}, py_callback:deliver(42, x))]}.

-spec whereis_name_test() -> term().
whereis_name_test() ->
    true = register(py_interop_tests_where, self()),
    try
        ?assertEqual(self(), py_callback:whereis_name(py_interop_tests_where)),
        ?assertEqual(self(), py_callback:whereis_name(<<"py_interop_tests_where">>))
    after
        unregister(py_interop_tests_where)
    end,
    Fresh = <<"py_interop_tests_never_an_atom_3141592653">>,
    ?assertEqual(undefined, py_callback:whereis_name(Fresh)),
    ?assertError(badarg, binary_to_existing_atom(Fresh, utf8)),
    ?assertEqual(undefined, py_callback:whereis_name(42)).

-spec lookup_without_the_application_test() -> term().
lookup_without_the_application_test() ->
    ?assertEqual(error, py_callback:lookup(anything)),
    ?assertEqual([], py_callback:registered()),
    ?assertEqual({error, not_started}, py_callback:register(x, fun(_) -> ok end)),
    ?assertEqual({error, not_started}, py_callback:unregister(x)).

-spec port_args_interop_options_test() -> term().
port_args_interop_options_test() ->
    Base = #{max_packet => 100, python_path => []},
    ?assertEqual(["port", "--max-packet", "100"], pyport_config:port_args(Base)),
    ?assertEqual(["port", "--max-packet", "100", "--path", "/p",
                  "--venv", "/v", "--preload", "a", "--preload", "b.c",
                  "--max-atoms", "50", "--log-level", "notice",
                  "--capture-output", "--stderr-file", "/tmp/f"],
                 pyport_config:port_args(Base#{python_path => ["/p"],
                                                 venv => <<"/v">>,
                                                 preload => [a, <<"b.c">>],
                                                 max_atoms => 50,
                                                 python_log_level => notice,
                                                 output => logger,
                                                 stderr_file => "/tmp/f"})).

-spec deep(non_neg_integer()) -> term().
deep(0) -> leaf;
deep(N) -> [deep(N - 1)].
