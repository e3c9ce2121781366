-module(pyport_wire_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-define(MAX, 1 bsl 20).

%% The term of a framed packet, after checking its length prefix.
unframe(Packet) ->
    <<Size:32, Bin/binary>> = iolist_to_binary(Packet),
    ?assertEqual(Size, byte_size(Bin)),
    ?assertEqual(Size, pyport_wire:payload_size(Packet)),
    binary_to_term(Bin).

decode(Term) ->
    case pyport_wire:decode(term_to_binary(Term), ?MAX, 100) of
        {ok, Packet, 0} -> Packet;
        Other -> Other
    end.

-spec encoders_build_the_documented_packets_test() -> term().
encoders_build_the_documented_packets_test() ->
    Ref = make_ref(),
    Opts = #{deadline_ms => 10, caller => self()},
    ?assertEqual({task, Ref, math, sqrt, [4.0], #{}, Opts},
                 unframe(pyport_wire:task(Ref, math, sqrt, [4.0], #{}, Opts))),
    ?assertEqual({exec, Ref, <<"x = 1">>, #{}},
                 unframe(pyport_wire:source(exec, Ref, <<"x = 1">>, #{}))),
    ?assertEqual({eval, Ref, <<"x">>, #{}},
                 unframe(pyport_wire:source(eval, Ref, <<"x">>, #{}))),
    ?assertEqual({cancel, Ref}, unframe(pyport_wire:cancel(Ref))),
    ?assertEqual({call_reply, 7, {ok, true}},
                 unframe(pyport_wire:call_reply(7, {ok, true}))),
    ?assertEqual({setup, #{worker => self(), loop => 3}},
                 unframe(pyport_wire:setup(self(), 3))),
    ?assertEqual(stop, unframe(pyport_wire:stop())).

-spec a_large_binary_argument_is_referenced_by_its_packet_not_copied_test() -> term().
a_large_binary_argument_is_referenced_by_its_packet_not_copied_test() ->
    Big = binary:copy(<<"x">>, 1 bsl 20),
    Ref = make_ref(),
    Packet = pyport_wire:task(Ref, m, f, [Big], #{}, #{}),
    ?assertEqual({task, Ref, m, f, [Big], #{}, #{}}, unframe(Packet)),
    %% The argument is a piece of the packet of its own (term_to_binary
    %% would have copied it into one binary holding the whole term).
    ?assert(lists:any(fun(Piece) -> Piece =:= Big end, Packet)),
    ?assertEqual(iolist_size(Packet) - 4, pyport_wire:payload_size(Packet)).

-spec decode_keeps_known_packets_as_sent_test() -> term().
decode_keeps_known_packets_as_sent_test() ->
    Known = [{result, make_ref(), {ok, 1}},
             {send, 1, self(), hi},
             {send, self(), hi},
             {call, 2, <<"f">>, [1]},
             {whereis, 3, <<"name">>},
             {log, info, <<"root">>, <<"text">>},
             {output, stderr, <<"line">>},
             {error, {bad_packet, <<"why">>}},
             {error, {unknown_message, x}},
             {start_failed, {bad_venv, <<"/v">>, <<"why">>}}],
    [?assertEqual(P, decode(P)) || P <- Known].

-spec decode_checks_the_protocol_version_test() -> term().
decode_checks_the_protocol_version_test() ->
    Info = #{protocol => pyport_wire:version(), os_pid => 1},
    ?assertEqual({ready, Info}, decode({ready, Info})),
    Old = Info#{protocol => pyport_wire:version() + 1},
    ?assertEqual({protocol_mismatch, Old}, decode({ready, Old})),
    ?assertEqual({protocol_mismatch, nothing}, decode({ready, nothing})).

-spec decode_tags_what_it_does_not_know_test() -> term().
decode_tags_what_it_does_not_know_test() ->
    ?assertEqual({unexpected, {hello, world}}, decode({hello, world})),
    ?assertEqual({unexpected, {result, 1}}, decode({result, 1})),
    ?assertEqual({broken, malformed}, pyport_wire:decode(<<131, 255>>, ?MAX, 100)).

-spec decode_refuses_what_the_port_never_sends_test() -> term().
decode_refuses_what_the_port_never_sends_test() ->
    Big = term_to_binary(binary:copy(<<0>>, 100)),
    ?assertEqual({broken, {too_large, byte_size(Big), 50}},
                 pyport_wire:decode(Big, 50, 100)),
    ?assertEqual({broken, compressed},
                 pyport_wire:decode(term_to_binary(binary:copy(<<0>>, 1000),
                                                   [compressed]), ?MAX, 100)).

-spec decode_refuses_atoms_over_the_budget_test() -> term().
decode_refuses_atoms_over_the_budget_test() ->
    Ref = make_ref(),
    %% Atom texts that do not exist: built as UTF-8 atom bytes by hand.
    New = [atom_ext(<<"pyport_wire_tests_", (integer_to_binary(N))/binary,
                      (integer_to_binary(erlang:unique_integer([positive])))/binary>>)
           || N <- lists:seq(1, 3)],
    List = iolist_to_binary([<<108, 3:32>>, New, <<106>>]),
    <<131, RefBytes/binary>> = term_to_binary(Ref),
    Frame = iolist_to_binary([<<131, 104, 3>>, atom_ext(<<"result">>), RefBytes,
                              <<104, 2>>, atom_ext(<<"ok">>), List]),
    ?assertMatch({refused, {atom_limit, _, 2}, {ok, Ref}},
                 pyport_wire:decode(Frame, ?MAX, 2)),
    ?assertMatch({ok, {result, Ref, {ok, [_, _, _]}}, 3},
                 pyport_wire:decode(Frame, ?MAX, 3)).

atom_ext(Name) ->
    <<119, (byte_size(Name)), Name/binary>>.
