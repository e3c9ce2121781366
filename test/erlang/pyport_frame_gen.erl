%% Arbitrary port output for the property tests of the BEAM's decode
%% boundary (pyport_term_tests, and py_hostile_SUITE through a real port):
%% random bytes, valid terms of every shape, compressed terms, frames full
%% of atoms that do not exist, and mutations of those.
-module(pyport_frame_gen).

-export([frame/1]).
-export([fresh/1]).
-export([atom_ext/1]).
-export([tuple_ext/1]).
-export([etf/1]).

%% The I-th arbitrary payload (the kind cycles with I; the content comes
%% from the process's rand state, which the caller seeds).
-spec frame(pos_integer()) -> binary().
frame(I) ->
    gen_frame(I).

%% A name no run has made an atom of yet.
-spec fresh(string()) -> binary().
fresh(Tag) ->
    iolist_to_binary(io_lib:format("pyport_gen_~s_~p_~p",
                                   [Tag, erlang:unique_integer([positive]),
                                    rand:uniform(1 bsl 40)])).

%% The external encoding of an atom that may not exist (term_to_binary
%% cannot make one without creating it).
-spec atom_ext(binary()) -> binary().
atom_ext(Name) -> <<119, (byte_size(Name)), Name/binary>>.

-spec tuple_ext([iodata()]) -> iodata().
tuple_ext(Elements) -> [<<104, (length(Elements))>> | Elements].

%% A whole term from the encodings of its parts.
-spec etf(iodata()) -> binary().
etf(Body) -> iolist_to_binary([131, Body]).

%% Internal.

gen_frame(I) ->
    case I rem 6 of
        0 -> crypto_bytes(rand:uniform(64));
        1 -> <<131, (crypto_bytes(rand:uniform(64)))/binary>>;
        2 -> term_to_binary(gen_term(3));
        3 -> term_to_binary(gen_term(3), [compressed]);
        4 -> etf(gen_atom_heavy(rand:uniform(40)));
        5 -> mutate(etf(gen_atom_heavy(rand:uniform(10))))
    end.

crypto_bytes(N) -> << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>.

gen_term(0) -> gen_leaf();
gen_term(D) ->
    case rand:uniform(5) of
        1 -> list_to_tuple([gen_term(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        2 -> [gen_term(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)];
        3 -> maps:from_list([{gen_leaf(), gen_term(D - 1)} || _ <- lists:seq(1, rand:uniform(3))]);
        _ -> gen_leaf()
    end.

gen_leaf() ->
    case rand:uniform(8) of
        1 -> rand:uniform(1 bsl 70) - (1 bsl 69);
        2 -> rand:uniform() * 1.0e10;
        3 -> crypto_bytes(rand:uniform(10));
        4 -> lists:nth(rand:uniform(3), [ok, error, undefined]);
        5 -> self();
        6 -> make_ref();
        7 -> rand:uniform(255);
        8 -> <<1:3>>
    end.

gen_atom_heavy(N) ->
    tuple_ext([atom_ext(fresh("h")) || _ <- lists:seq(1, min(N, 255))]).

mutate(Bin) ->
    Pos = rand:uniform(byte_size(Bin)) - 1,
    <<Head:Pos/binary, _, Tail/binary>> = Bin,
    case rand:uniform(3) of
        1 -> <<Head/binary, (rand:uniform(256) - 1), Tail/binary>>;
        2 -> Head;
        3 -> <<Head/binary, Tail/binary>>
    end.
