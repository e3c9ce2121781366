%% Decodes what a port sends: external term format from an untrusted
%% source (docs/robustness.md, "The port is untrusted").
%%
%% A plain binary_to_term/1 on port output lets task code crash the node:
%% every atom it creates is permanent (a million of them fill the atom
%% table) and a compressed term of 1 MB can inflate to gigabytes. This
%% module decodes with `[safe]`, refuses compressed terms and frames over
%% the packet limit, and creates new atoms only within a budget that its
%% caller (the loop's worker) keeps: Python cannot raise it.
%%
%% The fast path is one binary_to_term(Bin, [safe]); only a frame that it
%% refuses is scanned (without building anything) for the atom names it
%% would create. A large `{result, Id, {ok, Binary}}` frame is taken apart
%% instead, so that its binary is not copied (large_result/1).
-module(pyport_term).

%% API.
-export([decode/3]).
-export([result_id/1]).

-type budget() :: non_neg_integer().
-type reason() :: compressed
                | {too_large, non_neg_integer(), pos_integer()}
                | {atom_limit, pos_integer(), budget()}
                | malformed.
-export_type([budget/0, reason/0]).

-define(VERSION, 131).
-define(COMPRESSED, 80).
%% Frames above this may hold a large binary result (large_result/1).
-define(LARGE, 65536).

%% API.

%% @doc Decodes one frame. `Max' bounds its size (the port's `max_packet');
%% `Left' is how many atoms that do not exist yet it may create. Returns
%% the term and how many atoms it created.
-spec decode(binary(), pos_integer(), budget())
    -> {ok, term(), non_neg_integer()} | {error, reason()}.
decode(Bin, Max, _Left) when byte_size(Bin) > Max ->
    {error, {too_large, byte_size(Bin), Max}};
decode(<<?VERSION, ?COMPRESSED, _/binary>>, _Max, _Left) ->
    {error, compressed};
decode(Bin, _Max, Left) when byte_size(Bin) > ?LARGE ->
    case large_result(Bin) of
        {ok, Term} -> {ok, Term, 0};
        no -> decode_term(Bin, Left)
    end;
decode(Bin, _Max, Left) ->
    decode_term(Bin, Left).

decode_term(Bin, Left) ->
    try binary_to_term(Bin, [safe, used]) of
        {Term, Used} when Used =:= byte_size(Bin) -> {ok, Term, 0};
        {_, _} -> malformed()
    catch
        error:badarg -> decode_creating(Bin, Left)
    end.

%% @doc The `Id' of a `{result, Id, _}' frame (or of a stream's
%% `{stream_data | stream_end, Id, _}'), when `Id' itself decodes without
%% new atoms: lets a caller be told that its result was refused.
-spec result_id(binary()) -> {ok, term()} | error.
result_id(<<?VERSION, 104, 3, Rest/binary>>) ->
    case atom_name(Rest) of
        {ok, Tag, _, AfterTag} when Tag =:= <<"result">>;
                                    Tag =:= <<"stream_data">>;
                                    Tag =:= <<"stream_end">> ->
            case skip(AfterTag) of
                {ok, AfterId} ->
                    IdBytes = binary:part(AfterTag, 0, byte_size(AfterTag) - byte_size(AfterId)),
                    try {ok, binary_to_term(<<?VERSION, IdBytes/binary>>, [safe])}
                    catch error:badarg -> error
                    end;
                error ->
                    error
            end;
        _ ->
            error
    end;
result_id(_) ->
    error.

%% Internal.

%% `{result, Id, {ok, Binary}}` with a large binary last (a task that
%% returned a large str or bytes): the binary is a sub-binary of the frame
%% rather than a copy made by binary_to_term (docs/performance.md, "copies
%% of a 1 MiB echo"). Only the id goes through binary_to_term([safe]); a
%% frame of any other shape, or whose id would create atoms, takes the
%% general path. The external format is read front to back, so a frame
%% that is the envelope, a well-formed id, the `{ok, _}` tuple and a
%% binary extension filling it to the end decodes to exactly this term.
large_result(<<?VERSION, 104, 3, Rest/binary>>) ->
    case atom_name(Rest) of
        {ok, <<"result">>, _, AfterTag} ->
            case skip(AfterTag) of
                {ok, <<104, 2, OkAndValue/binary>> = AfterId} ->
                    case atom_name(OkAndValue) of
                        {ok, <<"ok">>, _, <<109, Len:32, Value:Len/binary>>} ->
                            IdBytes = binary:part(AfterTag, 0, byte_size(AfterTag) - byte_size(AfterId)),
                            try binary_to_term(<<?VERSION, IdBytes/binary>>, [safe]) of
                                Id -> {ok, {result, Id, {ok, Value}}}
                            catch
                                error:badarg -> no
                            end;
                        _ ->
                            no
                    end;
                _ ->
                    no
            end;
        _ ->
            no
    end;
large_result(_) ->
    no.

decode_creating(<<?VERSION, Body/binary>>, Left) ->
    case new_atoms(Body, Left) of
        {ok, []} ->
            malformed();
        {ok, Names} ->
            Created = create(Names),
            %% new_atoms/2 has checked that nothing trails the term.
            try binary_to_term(<<?VERSION, Body/binary>>, [safe]) of
                Term -> {ok, Term, Created}
            catch
                error:badarg -> malformed()
            end;
        {over, Count} ->
            {error, {atom_limit, Count, Left}};
        error ->
            malformed()
    end;
decode_creating(_, _) ->
    malformed().

malformed() -> {error, malformed}.

create(Names) ->
    lists:foldl(fun({Name, Enc}, N) -> _ = binary_to_atom(Name, Enc), N + 1 end, 0, Names).

%% The distinct atom names of one term that do not exist yet, stopping as
%% soon as there are more than `Left' of them.
new_atoms(Body, Left) ->
    case scan(Body, 1, #{}, Left) of
        {ok, <<>>, New} -> {ok, maps:keys(New)};
        {ok, _Trailing, _} -> error;
        Other -> Other
    end.

skip(Bin) ->
    case scan(Bin, 1, #{}, infinity) of
        {ok, Rest, _} -> {ok, Rest};
        _ -> error
    end.

%% scan(Bytes, TermsStillToRead, NewAtoms, Left): walks the encoding
%% without recursion on nesting, so a deeply nested frame costs no stack.
scan(Rest, 0, New, _Left) ->
    {ok, Rest, New};
scan(<<Tag, _/binary>> = Bin, N, New, Left) when Tag =:= 100; Tag =:= 115; Tag =:= 118; Tag =:= 119 ->
    atom_then(Bin, 0, N, New, Left);
scan(<<97, _, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<98, _:32, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<70, _:64, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<99, _:31/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<106, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<107, Len:16, _:Len/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<109, Len:32, _:Len/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<77, Len:32, _, _:Len/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<110, Len, _, _:Len/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<111, Len:32, _, _:Len/binary, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1, New, Left);
scan(<<104, Arity, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1 + Arity, New, Left);
scan(<<105, Arity:32, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1 + Arity, New, Left);
scan(<<108, Len:32, Rest/binary>>, N, New, Left) -> scan(Rest, N + Len, New, Left);
scan(<<116, Arity:32, Rest/binary>>, N, New, Left) -> scan(Rest, N - 1 + 2 * Arity, New, Left);
%% Pids, ports and references: a node name, then fixed-size fields.
scan(<<Tag, Rest/binary>>, N, New, Left) when Tag =:= 88; Tag =:= 103; Tag =:= 101;
                                              Tag =:= 89; Tag =:= 102; Tag =:= 120 ->
    atom_then(Rest, fixed_after_node(Tag), N, New, Left);
scan(<<Tag, Len:16, Rest/binary>>, N, New, Left) when Tag =:= 90; Tag =:= 114 ->
    Creation = case Tag of 90 -> 4; 114 -> 1 end,
    atom_then(Rest, Creation + 4 * Len, N, New, Left);
%% Funs, atom cache references and anything else: the port's codec never
%% produces them, so a frame holding one is not worth creating atoms for.
scan(_, _, _, _) ->
    error.

fixed_after_node(88) -> 12;
fixed_after_node(103) -> 9;
fixed_after_node(101) -> 5;
fixed_after_node(89) -> 8;
fixed_after_node(102) -> 5;
fixed_after_node(120) -> 12.

%% An atom (a term of its own, or the node name of a pid, port or
%% reference) followed by Fixed bytes, then the rest of the terms.
atom_then(Bin, Fixed, N, New, Left) ->
    case atom_name(Bin) of
        {ok, Name, Enc, <<_:Fixed/binary, Rest/binary>>} ->
            case note_atom(Name, Enc, New, Left) of
                {ok, New1} -> scan(Rest, N - 1, New1, Left);
                Over -> Over
            end;
        _ ->
            error
    end.

atom_name(<<100, Len:16, Name:Len/binary, Rest/binary>>) -> {ok, Name, latin1, Rest};
atom_name(<<115, Len, Name:Len/binary, Rest/binary>>) -> {ok, Name, latin1, Rest};
atom_name(<<118, Len:16, Name:Len/binary, Rest/binary>>) -> {ok, Name, utf8, Rest};
atom_name(<<119, Len, Name:Len/binary, Rest/binary>>) -> {ok, Name, utf8, Rest};
atom_name(_) -> error.

note_atom(Name, Enc, New, Left) ->
    Key = {Name, Enc},
    case is_map_key(Key, New) orelse exists(Name, Enc) of
        true -> {ok, New};
        false -> add_atom(Key, New, Left)
    end.

add_atom({Name, Enc} = Key, New, Left) ->
    case valid_name(Name, Enc) of
        false -> error;
        true when Left =/= infinity, map_size(New) >= Left -> {over, map_size(New) + 1};
        true -> {ok, New#{Key => true}}
    end.

exists(Name, Enc) ->
    try binary_to_existing_atom(Name, Enc) of
        _ -> true
    catch
        error:badarg -> false
    end.

valid_name(Name, latin1) ->
    byte_size(Name) =< 255;
valid_name(Name, utf8) ->
    case unicode:characters_to_list(Name, utf8) of
        Chars when is_list(Chars) -> length(Chars) =< 255;
        _ -> false
    end.
