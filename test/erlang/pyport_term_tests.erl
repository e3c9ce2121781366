%% pyport_term: decoding port output as untrusted input. The property
%% part feeds the decoder arbitrary frames (random bytes, valid terms of
%% every shape, compressed, atom-heavy, truncated) and checks that it never
%% raises, never creates more atoms than its budget and never accepts a
%% compressed or oversized frame.
-module(pyport_term_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-define(MAX, 1 bsl 20).
-define(LARGE_MAX, 64 bsl 20).

-import(pyport_frame_gen, [fresh/1, atom_ext/1, tuple_ext/1]).

frame(Body) -> pyport_frame_gen:etf(Body).

exists(Name) ->
    try binary_to_existing_atom(Name, utf8) of _ -> true
    catch error:badarg -> false
    end.

-spec plain_terms_decode_test() -> term().
plain_terms_decode_test() ->
    T = {result, make_ref(), {ok, [1, 2.5, <<"x">>, #{a => [self()]}, 1 bsl 200, -3]}},
    ?assertEqual({ok, T, 0}, pyport_term:decode(term_to_binary(T), ?MAX, 0)).

-spec new_atoms_within_budget_are_created_test() -> term().
new_atoms_within_budget_are_created_test() ->
    A = fresh("a"), B = fresh("b"),
    Bin = frame(tuple_ext([atom_ext(A), atom_ext(B), atom_ext(A)])),
    Result = pyport_term:decode(Bin, ?MAX, 2),
    ?assertEqual({ok, {binary_to_atom(A), binary_to_atom(B), binary_to_atom(A)}, 2}, Result).

-spec atoms_over_budget_are_refused_and_not_created_test() -> term().
atoms_over_budget_are_refused_and_not_created_test() ->
    Names = [fresh("n") || _ <- lists:seq(1, 5)],
    Bin = frame(tuple_ext([atom_ext(N) || N <- Names])),
    ?assertMatch({error, {atom_limit, 4, 3}}, pyport_term:decode(Bin, ?MAX, 3)),
    ?assertEqual([], [N || N <- Names, exists(N)]).

-spec zero_budget_still_decodes_existing_atoms_test() -> term().
zero_budget_still_decodes_existing_atoms_test() ->
    ?assertEqual({ok, {ok, error, true}, 0},
                 pyport_term:decode(term_to_binary({ok, error, true}), ?MAX, 0)).

-spec node_names_of_pids_count_as_atoms_test() -> term().
node_names_of_pids_count_as_atoms_test() ->
    Node = fresh("node"),
    %% NEW_PID_EXT with a node name that does not exist.
    Pid = [88, atom_ext(<<Node/binary, "@host">>), <<1:32, 0:32, 0:32>>],
    Bin = frame(Pid),
    ?assertMatch({error, {atom_limit, 1, 0}}, pyport_term:decode(Bin, ?MAX, 0)),
    ?assertNot(exists(<<Node/binary, "@host">>)),
    ?assertMatch({ok, P, 1} when is_pid(P), pyport_term:decode(Bin, ?MAX, 1)).

-spec a_large_binary_result_is_a_sub_binary_of_its_frame_test() -> term().
a_large_binary_result_is_a_sub_binary_of_its_frame_test() ->
    Big = binary:copy(<<"x">>, 1 bsl 20),
    Ref = make_ref(),
    Frame = term_to_binary({result, Ref, {ok, Big}}),
    {ok, {result, Ref, {ok, Value}} = Term, 0} = pyport_term:decode(Frame, ?LARGE_MAX, 0),
    ?assertEqual(binary_to_term(Frame), Term),
    %% Not copied: the value points into the frame (binary_to_term
    %% would have made a binary of its own).
    ?assertEqual(byte_size(Frame), binary:referenced_byte_size(Value)),
    %% Any id decodes, as on the general path; other shapes take it.
    [?assertEqual({ok, T, 0}, pyport_term:decode(term_to_binary(T), ?LARGE_MAX, 0))
     || T <- [{result, {7, [<<"id">>]}, {ok, Big}},
              {result, Ref, {error, Big}},
              {result, Ref, {ok, [Big]}},
              {stream_data, Ref, {ok, Big}},
              {result, Ref, {ok, Big}, extra}]].

-spec a_large_result_keeps_every_check_of_the_general_path_test() -> term().
a_large_result_keeps_every_check_of_the_general_path_test() ->
    Big = binary:copy(<<"y">>, 100000),
    Frame = term_to_binary({result, make_ref(), {ok, Big}}),
    ?assertEqual({error, malformed}, pyport_term:decode(<<Frame/binary, 0>>, ?LARGE_MAX, 0)),
    ?assertEqual({error, malformed}, pyport_term:decode(binary:part(Frame, 0, byte_size(Frame) - 1), ?LARGE_MAX, 0)),
    %% An id with an atom that does not exist: counted against the budget.
    Name = <<"pyport_term_tests_large_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Id = <<119, (byte_size(Name)), Name/binary>>,
    <<131, 104, 3, Rest/binary>> = term_to_binary({result, x, {ok, Big}}),
    <<100, 6:16, "result", 100, 1:16, "x", Tail/binary>> = Rest,
    NewAtomFrame = <<131, 104, 3, 100, 6:16, "result", Id/binary, Tail/binary>>,
    ?assertMatch({error, {atom_limit, 1, 0}}, pyport_term:decode(NewAtomFrame, ?LARGE_MAX, 0)),
    {ok, {result, Atom, {ok, Big}}, 1} = pyport_term:decode(NewAtomFrame, ?LARGE_MAX, 1),
    ?assertEqual(Name, atom_to_binary(Atom)).

-spec compressed_frames_are_refused_test() -> term().
compressed_frames_are_refused_test() ->
    Big = term_to_binary(binary:copy(<<0>>, 1 bsl 16), [compressed]),
    ?assertMatch(<<131, 80, _/binary>>, Big),
    ?assertEqual({error, compressed}, pyport_term:decode(Big, ?MAX, 100)).

-spec oversized_frames_are_refused_test() -> term().
oversized_frames_are_refused_test() ->
    Bin = term_to_binary(binary:copy(<<1>>, 2000)),
    ?assertEqual({error, {too_large, byte_size(Bin), 1000}}, pyport_term:decode(Bin, 1000, 0)).

-spec trailing_bytes_are_malformed_test() -> term().
trailing_bytes_are_malformed_test() ->
    Bin = term_to_binary({result, 1}),
    ?assertEqual({error, malformed}, pyport_term:decode(<<Bin/binary, 0>>, ?MAX, 0)),
    New = frame(atom_ext(fresh("t"))),
    ?assertEqual({error, malformed}, pyport_term:decode(<<New/binary, 0>>, ?MAX, 5)).

-spec garbage_is_malformed_test() -> term().
garbage_is_malformed_test() ->
    ?assertEqual({error, malformed}, pyport_term:decode(<<"hello">>, ?MAX, 5)),
    ?assertEqual({error, malformed}, pyport_term:decode(<<131, 104, 3>>, ?MAX, 5)),
    ?assertEqual({error, malformed}, pyport_term:decode(<<>>, ?MAX, 5)).

-spec overlong_atom_names_are_malformed_test() -> term().
overlong_atom_names_are_malformed_test() ->
    Name = binary:copy(<<"x">>, 256),
    ?assertEqual({error, malformed},
                 pyport_term:decode(frame([118, <<256:16>>, Name]), ?MAX, 5)).

-spec deep_nesting_costs_no_stack_test() -> term().
deep_nesting_costs_no_stack_test() ->
    Depth = 200000,
    Name = fresh("deep"),
    Bin = frame([lists:duplicate(Depth, <<104, 1>>), atom_ext(Name)]),
    {ok, _, 1} = pyport_term:decode(Bin, 1 bsl 24, 1),
    ?assert(exists(Name)).

-spec result_id_of_a_refused_result_test() -> term().
result_id_of_a_refused_result_test() ->
    Ref = make_ref(),
    Names = [fresh("r") || _ <- lists:seq(1, 3)],
    %% {result, Ref, {ok, [NewAtom...]}} built by hand.
    <<131, RefBody/binary>> = term_to_binary(Ref),
    Frame = frame(tuple_ext([atom_ext(<<"result">>), RefBody,
                             tuple_ext([atom_ext(<<"ok">>),
                                        [108, <<3:32>>, [atom_ext(N) || N <- Names], 106]])])),
    ?assertMatch({error, {atom_limit, _, 0}}, pyport_term:decode(Frame, ?MAX, 0)),
    ?assertEqual({ok, Ref}, pyport_term:result_id(Frame)),
    ?assertEqual(error, pyport_term:result_id(term_to_binary({log, a, b, c}))),
    ?assertEqual(error, pyport_term:result_id(<<131, 104, 3, 119, 6, "result", 255>>)).

%% Property: arbitrary frames never crash the decoder, never create more
%% atoms than the budget, and compressed or oversized frames never decode.
-spec arbitrary_frames_are_bounded_test_() -> term().
arbitrary_frames_are_bounded_test_() ->
    {timeout, 120, fun arbitrary_frames_are_bounded/0}.

arbitrary_frames_are_bounded() ->
    _ = rand:seed(exsss, {17, 4, 2026}),
    Cases = 20000,
    lists:foreach(fun(I) -> one_case(I) end, lists:seq(1, Cases)).

one_case(I) ->
    Budget = rand:uniform(20) - 1,
    Frame = pyport_frame_gen:frame(I),
    Before = erlang:system_info(atom_count),
    Result = pyport_term:decode(Frame, 1 bsl 16, Budget),
    Created = erlang:system_info(atom_count) - Before,
    %% Other processes may create a few atoms meanwhile (the test runner
    %% prints): allow no more than the budget, plus nothing when refused.
    case Result of
        {ok, _, N} ->
            ?assert(N =< Budget),
            ?assert(Created =< Budget + 2, {Created, Budget});
        {error, Reason} ->
            ok = check_reason(Reason),
            ?assert(Created =< 2, {created_on_error, Created, Reason})
    end,
    case Frame of
        <<131, 80, _/binary>> -> ?assertEqual({error, compressed}, Result);
        _ when byte_size(Frame) > 1 bsl 16 -> ?assertMatch({error, {too_large, _, _}}, Result);
        _ -> ok
    end.

%% A reason outside the documented set fails the case (case_clause).
check_reason(Reason) ->
    case Reason of
        compressed -> ok;
        malformed -> ok;
        {too_large, Size, Max} when is_integer(Size), is_integer(Max) -> ok;
        {atom_limit, N, Left} when is_integer(N), is_integer(Left) -> ok
    end.
