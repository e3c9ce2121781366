-module(pyport_framer_tests).

-include_lib("eunit/include/eunit.hrl").

%% eunit generates test/0; the build wants a spec for every export.
-spec test() -> term().

frame(Payload) ->
    <<(byte_size(Payload)):32, Payload/binary>>.

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
    Bin = iolist_to_binary([frame(<<"a">>), frame(<<>>), frame(<<"bcd">>)]),
    ?assertEqual({[<<"a">>, <<>>, <<"bcd">>], 0}, feed_all([Bin], 100)).

-spec frames_split_anywhere_test() -> term().
frames_split_anywhere_test() ->
    Payloads = [<<"hello">>, <<>>, binary:copy(<<"x">>, 300), <<"end">>],
    Bin = iolist_to_binary([frame(P) || P <- Payloads]),
    %% Every split point, and byte by byte.
    [?assertEqual({Payloads, 0},
                  feed_all([binary:part(Bin, 0, N),
                            binary:part(Bin, N, byte_size(Bin) - N)], 1000))
     || N <- lists:seq(0, byte_size(Bin))],
    ?assertEqual({Payloads, 0}, feed_all([<<B>> || <<B>> <= Bin], 1000)).

-spec incomplete_frame_is_held_test() -> term().
incomplete_frame_is_held_test() ->
    ?assertEqual({[<<"a">>], 3}, feed_all([<<(frame(<<"a">>))/binary, 0, 0, 0>>], 10)),
    ?assertEqual({[], 6}, feed_all([<<0, 0, 0, 5, "ab">>], 10)).

-spec length_over_the_limit_is_refused_at_once_test() -> term().
length_over_the_limit_is_refused_at_once_test() ->
    %% "hell" read as a length: 1.7 GB, refused before any more arrives.
    ?assertEqual({error, {frame_too_large, 16#68656c6c, 1000}},
                 pyport_framer:feed(<<"hello world">>, pyport_framer:new(1000))),
    {ok, [], F} = pyport_framer:feed(<<0, 0>>, pyport_framer:new(1000)),
    ?assertEqual({error, {frame_too_large, 16#1000, 1000}},
                 pyport_framer:feed(<<16#10, 0>>, F)),
    ?assertMatch({ok, [<<_:1000/binary>>], _},
                 pyport_framer:feed(frame(binary:copy(<<0>>, 1000)),
                                    pyport_framer:new(1000))).
