%% Every row of the type table (docs/DESIGN.md), in both directions: what
%% Python sees (type names checked in Python) and what comes back.
-module(py_types_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(H, pyport_ct_helpers).

-spec all() -> [atom()].
all() ->
    [integers, bignums_to_python, bignums_from_python, floats,
     special_floats_from_python, utf8_binary_is_str, invalid_utf8_is_bytes,
     bytes_tuple, atoms_are_str, booleans, none_atoms, lists, tuples, maps,
     pids_round_trip, refs_round_trip, python_side_type_names,
     python_values_to_erlang, python_atom, unconvertible_arguments,
     deep_nesting_within_limit, deep_argument_beyond_limit,
     deep_result_beyond_limit].

-spec init_per_suite(ct_suite:ct_config()) -> ct_suite:ct_config().
init_per_suite(Config) ->
    ok = pyport_ct:start([{event_loop_pool_size, 1}]),
    Config.

-spec end_per_suite(ct_suite:ct_config()) -> ok.
end_per_suite(_Config) ->
    pyport_ct:stop().

-spec integers() -> [{doc, string()}].
integers() -> [{doc, "Small integers are Python int and come back equal."}].
-spec integers(ct_suite:ct_config()) -> term().
integers(_) ->
    [begin
         ?assertEqual({ok, <<"int">>}, run(type_name, [I])),
         ?assertEqual({ok, I}, run(identity, [I]))
     end || I <- [0, 1, -1, 42, 255, 256, -256, (1 bsl 31) - 1, -(1 bsl 31),
                  (1 bsl 59), (1 bsl 63) - 1]].

-spec bignums_to_python() -> [{doc, string()}].
bignums_to_python() -> [{doc, "2^200 and -2^200 arrive as exact Python ints and round-trip as Erlang bignums."}].
-spec bignums_to_python(ct_suite:ct_config()) -> term().
bignums_to_python(_) ->
    Big = 1 bsl 200,
    ?assertEqual({ok, [true, false, 201]}, run(int_facts, [Big])),
    ?assertEqual({ok, [false, true, 201]}, run(int_facts, [-Big])),
    [?assertEqual({ok, I}, run(identity, [I]))
     || I <- [Big, -Big, 1 bsl 64, -(1 bsl 64), (1 bsl 1000) + 1]].

-spec bignums_from_python() -> [{doc, string()}].
bignums_from_python() -> [{doc, "Python ints beyond 64 bits become real Erlang bignums."}].
-spec bignums_from_python(ct_suite:ct_config()) -> term().
bignums_from_python(_) ->
    ?assertEqual({ok, [1 bsl 200, -(1 bsl 200), 1 bsl 64, -(1 bsl 63) - 1, 0]},
                 run(big_ints, [])).

-spec floats() -> [{doc, string()}].
floats() -> [{doc, "Floats are Python float and come back bit for bit."}].
-spec floats(ct_suite:ct_config()) -> term().
floats(_) ->
    [begin
         ?assertEqual({ok, <<"float">>}, run(type_name, [F])),
         ?assertEqual({ok, F}, run(identity, [F]))
     end || F <- [0.0, 1.5, -2.25, 1.0e300, 5.0e-324, 3.141592653589793]].

-spec special_floats_from_python() -> [{doc, string()}].
special_floats_from_python() -> [{doc, "Python nan, inf and -inf become the atoms nan, infinity and neg_infinity."}].
-spec special_floats_from_python(ct_suite:ct_config()) -> term().
special_floats_from_python(_) ->
    {ok, [nan, infinity, neg_infinity, 1.5, Zero]} = run(special_floats, []),
    ?assert(Zero == 0.0),
    %% The other way round they are plain atoms, hence str.
    ?assertEqual({ok, <<"infinity">>}, run(identity, [infinity])).

-spec utf8_binary_is_str() -> [{doc, string()}].
utf8_binary_is_str() -> [{doc, "A UTF-8 binary is a Python str and comes back as the same binary."}].
-spec utf8_binary_is_str(ct_suite:ct_config()) -> term().
utf8_binary_is_str(_) ->
    [begin
         ?assertEqual({ok, <<"str">>}, run(type_name, [B])),
         ?assertEqual({ok, B}, run(identity, [B]))
     end || B <- [<<>>, <<"hello">>, <<"héllo wörld €"/utf8>>, <<"🐍"/utf8>>,
                  <<0, "nul inside">>]],
    ?assertEqual({ok, [<<"str">>, <<"'héllo'"/utf8>>]},
                 run(describe, [<<"héllo"/utf8>>])).

-spec invalid_utf8_is_bytes() -> [{doc, string()}].
invalid_utf8_is_bytes() -> [{doc, "A binary that is not UTF-8 arrives as bytes and returns as the same binary."}].
-spec invalid_utf8_is_bytes(ct_suite:ct_config()) -> term().
invalid_utf8_is_bytes(_) ->
    [begin
         ?assertEqual({ok, <<"bytes">>}, run(type_name, [B])),
         ?assertEqual({ok, B}, run(identity, [B]))
     end || B <- [<<255>>, <<0, 255, 254>>, <<"abc", 192>>, <<237, 160, 128>>]].

-spec bytes_tuple() -> [{doc, string()}].
bytes_tuple() -> [{doc, "{bytes, Bin} is Python bytes, whatever its content, and comes back as Bin."}].
-spec bytes_tuple(ct_suite:ct_config()) -> term().
bytes_tuple(_) ->
    ?assertEqual({ok, [<<"bytes">>, <<"b'\\x00\\xff'">>]},
                 run(describe, [{bytes, <<0, 255>>}])),
    ?assertEqual({ok, <<0, 255>>}, run(identity, [{bytes, <<0, 255>>}])),
    ?assertEqual({ok, [<<"bytes">>, <<"b'abc'">>]}, run(describe, [{bytes, <<"abc">>}])),
    ?assertEqual({ok, [<<"bytes">>, <<"b''">>]}, run(describe, [{bytes, <<>>}])).

-spec atoms_are_str() -> [{doc, string()}].
atoms_are_str() -> [{doc, "Atoms other than the special ones are Python str and come back as binaries."}].
-spec atoms_are_str(ct_suite:ct_config()) -> term().
atoms_are_str(_) ->
    [begin
         ?assertEqual({ok, <<"str">>}, run(type_name, [A])),
         ?assertEqual({ok, atom_to_binary(A)}, run(identity, [A]))
     end || A <- [ok, error, 'hello world', 'ünïcödé', '', null, nan]].

-spec booleans() -> [{doc, string()}].
booleans() -> [{doc, "true and false are Python bool and come back as atoms."}].
-spec booleans(ct_suite:ct_config()) -> term().
booleans(_) ->
    ?assertEqual({ok, true}, run(is_bool, [true])),
    ?assertEqual({ok, true}, run(is_bool, [false])),
    ?assertEqual({ok, true}, run(identity, [true])),
    ?assertEqual({ok, false}, run(identity, [false])),
    ?assertEqual({ok, [<<"bool">>, <<"True">>]}, run(describe, [true])).

-spec none_atoms() -> [{doc, string()}].
none_atoms() -> [{doc, "none, nil and undefined are Python None; None comes back as none."}].
-spec none_atoms(ct_suite:ct_config()) -> term().
none_atoms(_) ->
    [begin
         ?assertEqual({ok, true}, run(is_none, [A])),
         ?assertEqual({ok, none}, run(identity, [A]))
     end || A <- [none, nil, undefined]].

-spec lists() -> [{doc, string()}].
lists() -> [{doc, "Lists are Python lists and come back element for element."}].
-spec lists(ct_suite:ct_config()) -> term().
lists(_) ->
    [begin
         ?assertEqual({ok, <<"list">>}, run(type_name, [L])),
         ?assertEqual({ok, L}, run(identity, [L]))
     end || L <- [[], [1], [1, 2.5, <<"x">>, [[]], {1}], lists:seq(1, 1000)]],
    %% A charlist is just a list of ints.
    ?assertEqual({ok, "abc"}, run(identity, ["abc"])).

-spec tuples() -> [{doc, string()}].
tuples() -> [{doc, "Tuples are Python tuples and come back as tuples."}].
-spec tuples(ct_suite:ct_config()) -> term().
tuples(_) ->
    [begin
         ?assertEqual({ok, <<"tuple">>}, run(type_name, [T])),
         ?assertEqual({ok, T}, run(identity, [T]))
     end || T <- [{}, {1}, {1, <<"a">>, [2]}, list_to_tuple(lists:seq(1, 300))]].

-spec maps() -> [{doc, string()}].
maps() -> [{doc, "Maps are Python dicts; atom keys come back as binaries (atom -> str -> binary)."}].
-spec maps(ct_suite:ct_config()) -> term().
maps(_) ->
    M = #{<<"a">> => 1, 2 => [<<"b">>], {1, 2} => #{<<"in">> => 1.5}},
    ?assertEqual({ok, <<"dict">>}, run(type_name, [M])),
    ?assertEqual({ok, M}, run(identity, [M])),
    ?assertEqual({ok, #{}}, run(identity, [#{}])),
    ?assertEqual({ok, #{<<"key">> => true}}, run(identity, [#{key => true}])),
    Big = maps:from_list([{I, I * I} || I <- lists:seq(1, 500)]),
    ?assertEqual({ok, Big}, run(identity, [Big])).

-spec pids_round_trip() -> [{doc, string()}].
pids_round_trip() -> [{doc, "A pid is an erlang.Pid in Python and comes back as the same pid."}].
-spec pids_round_trip(ct_suite:ct_config()) -> term().
pids_round_trip(_) ->
    Other = spawn(fun() -> ok end),
    ?assertEqual({ok, <<"Pid">>}, run(type_name, [self()])),
    ?assertEqual({ok, self()}, run(identity, [self()])),
    ?assertEqual({ok, [self(), Other, self()]}, run(identity, [[self(), Other, self()]])).

-spec refs_round_trip() -> [{doc, string()}].
refs_round_trip() -> [{doc, "A reference is an erlang.Ref in Python and comes back as the same reference."}].
-spec refs_round_trip(ct_suite:ct_config()) -> term().
refs_round_trip(_) ->
    Ref = make_ref(),
    Alias = alias(),
    ?assertEqual({ok, <<"Ref">>}, run(type_name, [Ref])),
    ?assertEqual({ok, Ref}, run(identity, [Ref])),
    ?assertEqual({ok, {Alias, Ref}}, run(identity, [{Alias, Ref}])),
    true = unalias(Alias).

-spec python_side_type_names() -> [{doc, string()}].
python_side_type_names() -> [{doc, "Checked in Python with type(): each Erlang type arrives as the table says."}].
-spec python_side_type_names(ct_suite:ct_config()) -> term().
python_side_type_names(_) ->
    Values = [1, 1 bsl 100, 1.5, <<"s">>, <<255>>, {bytes, <<"b">>}, atom, true,
              false, none, nil, undefined, [], {}, #{}, self(), make_ref()],
    Expected = [<<"int">>, <<"int">>, <<"float">>, <<"str">>, <<"bytes">>,
                <<"bytes">>, <<"str">>, <<"bool">>, <<"bool">>, <<"NoneType">>,
                <<"NoneType">>, <<"NoneType">>, <<"list">>, <<"tuple">>,
                <<"dict">>, <<"Pid">>, <<"Ref">>],
    ?assertEqual({ok, Expected}, run(type_names, [Values])).

-spec python_values_to_erlang() -> [{doc, string()}].
python_values_to_erlang() -> [{doc, "Each Python type of the table arrives in Erlang as the table says."}].
-spec python_values_to_erlang(ct_suite:ct_config()) -> term().
python_values_to_erlang(_) ->
    ?assertEqual({ok, #{<<"str">> => <<"héllo"/utf8>>,
                        <<"bytes">> => <<0, 255>>,
                        <<"true">> => true,
                        <<"false">> => false,
                        <<"none">> => none,
                        <<"list">> => [1, 2],
                        <<"tuple">> => {1, <<"a">>},
                        <<"dict">> => #{<<"k">> => [1]},
                        <<"atom">> => ok,
                        <<"float">> => 2.5,
                        <<"int">> => 7}},
                 run(python_values, [])).

-spec python_atom() -> [{doc, string()}].
python_atom() -> [{doc, "erlang.Atom(name) made in Python arrives as that atom."}].
-spec python_atom(ct_suite:ct_config()) -> term().
python_atom(_) ->
    ?assertEqual({ok, hello}, run(atom, [<<"hello">>])),
    ?assertEqual({ok, 'with space'}, run(atom, [<<"with space">>])).

-spec unconvertible_arguments() -> [{doc, string()}].
unconvertible_arguments() -> [{doc, "An argument with no Python form (fun, port, improper list) fails that task with a TypeError; the loop goes on."}].
-spec unconvertible_arguments(ct_suite:ct_config()) -> term().
unconvertible_arguments(_) ->
    [?assertMatch({error, {python, <<"TypeError">>, _, _}}, run(identity, [Bad]))
     || Bad <- [fun() -> ok end, hd(erlang:ports()), [1 | 2]]],
    ?assertEqual({ok, 1}, run(identity, [1])).

-spec deep_nesting_within_limit() -> [{doc, string()}].
deep_nesting_within_limit() -> [{doc, "Nesting just under the limit converts both ways."}].
-spec deep_nesting_within_limit(ct_suite:ct_config()) -> term().
deep_nesting_within_limit(_) ->
    {ok, Max} = run(max_depth, []),
    Depth = Max - 10,
    Deep = nest(Depth),
    ?assertEqual({ok, Depth}, run(depth_of, [Deep])),
    ?assertEqual({ok, Deep}, run(nested_list, [Depth])).

-spec deep_argument_beyond_limit() -> [{doc, string()}].
deep_argument_beyond_limit() -> [{doc, "An argument nested beyond the limit fails its task with a clear error; the port survives."}].
-spec deep_argument_beyond_limit(ct_suite:ct_config()) -> term().
deep_argument_beyond_limit(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    {ok, Max} = run(max_depth, []),
    {error, {python, Type, Msg, _}} = run(depth_of, [nest(Max + 10)]),
    ct:log("~s: ~s", [Type, Msg]),
    ?assert(byte_size(Msg) > 0),
    ?assertMatch({_, _}, binary:match(Msg, <<"deep">>)),
    ?assertEqual({ok, 1}, run(identity, [1])),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

-spec deep_result_beyond_limit() -> [{doc, string()}].
deep_result_beyond_limit() -> [{doc, "A result nested beyond the limit fails its task with a clear error; the port survives."}].
-spec deep_result_beyond_limit(ct_suite:ct_config()) -> term().
deep_result_beyond_limit(_) ->
    #{os_pid := OsPid} = pyport_ct:loop_stats(1),
    {ok, Max} = run(max_depth, []),
    {error, {python, Type, Msg, _}} = run(nested_list, [Max + 10]),
    ct:log("~s: ~s", [Type, Msg]),
    ?assertMatch({_, _}, binary:match(Msg, <<"deep">>)),
    ?assertEqual({ok, 1}, run(identity, [1])),
    ?assertMatch(#{os_pid := OsPid}, pyport_ct:loop_stats(1)).

%% Internal.

-spec run(atom(), list()) -> py_event_loop:result().
run(Func, Args) ->
    py_event_loop:run(?H, Func, Args, #{timeout => 10000}).

-spec nest(non_neg_integer()) -> list().
nest(0) -> [];
nest(N) -> [nest(N - 1)].
