-module(pyport_wire_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

-spec encoders_build_the_documented_packets_test() -> term().
encoders_build_the_documented_packets_test() ->
    Ref = make_ref(),
    Opts = #{deadline_ms => 10, caller => self()},
    ?assertEqual({task, Ref, math, sqrt, [4.0], #{}, Opts},
                 binary_to_term(pyport_wire:task(Ref, math, sqrt, [4.0], #{}, Opts))),
    ?assertEqual({exec, Ref, <<"x = 1">>, #{}},
                 binary_to_term(pyport_wire:source(exec, Ref, <<"x = 1">>, #{}))),
    ?assertEqual({eval, Ref, <<"x">>, #{}},
                 binary_to_term(pyport_wire:source(eval, Ref, <<"x">>, #{}))),
    ?assertEqual({cancel, Ref}, binary_to_term(pyport_wire:cancel(Ref))),
    ?assertEqual({call_reply, 7, {ok, true}},
                 binary_to_term(pyport_wire:call_reply(7, {ok, true}))),
    ?assertEqual({setup, #{worker => self(), loop => 3}},
                 binary_to_term(pyport_wire:setup(self(), 3))),
    ?assertEqual(stop, binary_to_term(pyport_wire:stop())).

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
    [?assertEqual(P, pyport_wire:decode(term_to_binary(P))) || P <- Known].

-spec decode_checks_the_protocol_version_test() -> term().
decode_checks_the_protocol_version_test() ->
    Info = #{protocol => pyport_wire:version(), os_pid => 1},
    ?assertEqual({ready, Info}, pyport_wire:decode(term_to_binary({ready, Info}))),
    Old = Info#{protocol => pyport_wire:version() + 1},
    ?assertEqual({protocol_mismatch, Old},
                 pyport_wire:decode(term_to_binary({ready, Old}))),
    ?assertEqual({protocol_mismatch, nothing},
                 pyport_wire:decode(term_to_binary({ready, nothing}))).

-spec decode_tags_what_it_does_not_know_test() -> term().
decode_tags_what_it_does_not_know_test() ->
    ?assertEqual({unexpected, {hello, world}},
                 pyport_wire:decode(term_to_binary({hello, world}))),
    ?assertEqual({unexpected, {result, 1}},
                 pyport_wire:decode(term_to_binary({result, 1}))),
    ?assertEqual({undecodable, <<131, 255>>}, pyport_wire:decode(<<131, 255>>)).
