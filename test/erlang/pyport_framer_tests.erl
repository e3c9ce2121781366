-module(pyport_framer_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

frame(Payload) ->
    <<(byte_size(Payload)):32, Payload/binary>>.

%% A payload that starts as every packet of the port does.
p(Rest) ->
    <<131, 104, Rest/binary>>.

%% Feeds Chunks one by one; the frames in order.
feed_all(Chunks, Max) ->
    {Frames, F} = lists:foldl(
                    fun(Chunk, {Acc, F0}) ->
                            {ok, New, F1} = pyport_framer:feed(Chunk, F0),
                            {Acc ++ New, F1}
                    end, {[], pyport_framer:new(Max)}, Chunks),
    {Frames, pyport_framer:buffered(F)}.

-spec whole_frames_in_one_read_test() -> term().
whole_frames_in_one_read_test() ->
    Bin = iolist_to_binary([frame(p(<<"a">>)), frame(p(<<>>)), frame(p(<<"bcd">>))]),
    ?assertEqual({[p(<<"a">>), p(<<>>), p(<<"bcd">>)], 0}, feed_all([Bin], 100)).

-spec frames_split_anywhere_test() -> term().
frames_split_anywhere_test() ->
    Payloads = [p(<<"hello">>), p(<<>>), p(binary:copy(<<"x">>, 300)), p(<<"end">>)],
    Bin = iolist_to_binary([frame(P) || P <- Payloads]),
    %% Every split point, and byte by byte.
    [?assertEqual({Payloads, 0},
                  feed_all([binary:part(Bin, 0, N),
                            binary:part(Bin, N, byte_size(Bin) - N)], 1000))
     || N <- lists:seq(0, byte_size(Bin))],
    ?assertEqual({Payloads, 0}, feed_all([<<B>> || <<B>> <= Bin], 1000)).

-spec incomplete_frame_is_held_test() -> term().
incomplete_frame_is_held_test() ->
    ?assertEqual({[p(<<"a">>)], 3}, feed_all([<<(frame(p(<<"a">>)))/binary, 0, 0, 0>>], 10)),
    ?assertEqual({[], 6}, feed_all([<<0, 0, 0, 5, 131, 104>>], 10)).

-spec frame_not_starting_as_a_packet_is_refused_at_once_test() -> term().
frame_not_starting_as_a_packet_is_refused_at_once_test() ->
    %% A plausible length, then not a term: refused before the rest comes.
    ?assertEqual({error, {not_a_packet, <<"ab">>}},
                 pyport_framer:feed(<<0, 0, 16, 0, "ab">>, pyport_framer:new(1 bsl 20))),
    %% The check waits for its bytes, however they are split.
    {ok, [], F1} = pyport_framer:feed(<<0, 0, 16, 0, 131>>, pyport_framer:new(1 bsl 20)),
    ?assertEqual({error, {not_a_packet, <<131, 80>>}}, pyport_framer:feed(<<80, 1, 2>>, F1)),
    %% A term, but not a tuple (every packet of the port is one).
    ?assertEqual({error, {not_a_packet, <<131, 100>>}},
                 pyport_framer:feed(frame(<<131, 100, 0, 1, "x">>), pyport_framer:new(100))),
    %% Too short to be a packet at all.
    ?assertEqual({error, {not_a_packet, <<0, 0, 0, 1>>}},
                 pyport_framer:feed(<<0, 0, 0, 1, 131>>, pyport_framer:new(100))),
    %% After a good frame too.
    ?assertEqual({error, {not_a_packet, <<"zz">>}},
                 pyport_framer:feed(<<(frame(p(<<>>)))/binary, 0, 0, 0, 9, "zz">>,
                                    pyport_framer:new(100))).

-spec length_over_the_limit_is_refused_at_once_test() -> term().
length_over_the_limit_is_refused_at_once_test() ->
    %% "hell" read as a length: 1.7 GB, refused before any more arrives.
    ?assertEqual({error, {frame_too_large, 16#68656c6c, 1000}},
                 pyport_framer:feed(<<"hello world">>, pyport_framer:new(1000))),
    {ok, [], F} = pyport_framer:feed(<<0, 0>>, pyport_framer:new(1000)),
    ?assertEqual({error, {frame_too_large, 16#1000, 1000}},
                 pyport_framer:feed(<<16#10, 0>>, F)),
    ?assertMatch({ok, [<<_:1000/binary>>], _},
                 pyport_framer:feed(frame(p(binary:copy(<<0>>, 998))),
                                    pyport_framer:new(1000))).
