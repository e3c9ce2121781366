%% Splits the port's output stream into frames (a 4-byte big-endian
%% length, then that many bytes).
%%
%% The port is opened in stream mode rather than `{packet, 4}`: with
%% `{packet, 4}` the runtime reads whatever the port writes as a length
%% and waits for that many bytes, so four bytes of garbage (say "hell",
%% a 1.7 GB length) leave the worker waiting for ever without seeing a
%% thing. Here a length over the packet limit is refused the moment its
%% four bytes arrive, and the worker can declare the stream broken. So is
%% a frame that does not start as every packet of the port does (the
%% version byte 131, then a small tuple), checked as soon as those bytes
%% are in: garbage with a plausible length is caught at once too, rather
%% than after it has swallowed the real frames behind it.
%%
%% Frames are sub-binaries of what the port delivered (no copy); only a
%% frame split over several reads is joined, once, when it is complete.
-module(pyport_framer).

%% API.
-export([new/1]).
-export([feed/2]).
-export([buffered/1]).

-record(framer, {
    max :: pos_integer(),
    %% The chunks of an incomplete frame, newest first, and their size.
    chunks = [] :: [binary()],
    size = 0 :: non_neg_integer(),
    %% The size (prefix included) the incomplete frame needs, once its
    %% prefix is known.
    need = undefined :: pos_integer() | undefined
}).

%% Bytes a frame must have for its start to be checked: the length, the
%% version byte and the small-tuple tag.
-define(START, 6).

-opaque framer() :: #framer{}.
-type error() :: {frame_too_large, non_neg_integer(), pos_integer()}
               | {not_a_packet, binary()}.
-export_type([framer/0, error/0]).

%% API.

%% A framer that refuses frames whose payload is over Max bytes.
-spec new(pos_integer()) -> framer().
new(Max) when is_integer(Max), Max > 0 ->
    #framer{max = Max}.

%% The complete frames (payloads) Bin finishes, in order, and the framer
%% holding what is left; a length over the limit is an error at once.
-spec feed(binary(), framer()) -> {ok, [binary()], framer()} | {error, error()}.
feed(Bin, #framer{chunks = [], max = Max} = F) ->
    split(Bin, Max, F, []);
feed(Bin, #framer{chunks = Chunks, size = Size, need = Need, max = Max} = F0) ->
    Total = Size + byte_size(Bin),
    F = F0#framer{chunks = [Bin | Chunks], size = Total},
    case Need of
        undefined when Total < 4 ->
            {ok, [], F};
        Need when is_integer(Need), Total < Need, Size >= ?START ->
            {ok, [], F};
        _ ->
            %% The prefix (if it was unknown) or the frame is complete:
            %% join once and split as if it had come in one read.
            Joined = iolist_to_binary(lists:reverse([Bin | Chunks])),
            split(Joined, Max, F0#framer{chunks = [], size = 0, need = undefined}, [])
    end.

%% How many bytes of an incomplete frame are held.
-spec buffered(framer()) -> non_neg_integer().
buffered(#framer{size = Size}) ->
    Size.

%% Internal.

split(<<Len:32, _/binary>>, Max, _F, _Acc) when Len > Max ->
    {error, {frame_too_large, Len, Max}};
split(<<Len:32, _/binary>>, _Max, _F, _Acc) when Len < ?START - 4 ->
    {error, {not_a_packet, <<Len:32>>}};
split(<<_:32, Start:2/binary, _/binary>>, _Max, _F, _Acc) when Start =/= <<131, 104>> ->
    {error, {not_a_packet, Start}};
split(<<Len:32, Payload:Len/binary, Rest/binary>>, Max, F, Acc) ->
    split(Rest, Max, F, [Payload | Acc]);
split(<<>>, _Max, F, Acc) ->
    {ok, lists:reverse(Acc), F};
split(<<Len:32, _/binary>> = Partial, _Max, F, Acc) ->
    {ok, lists:reverse(Acc),
     F#framer{chunks = [Partial], size = byte_size(Partial), need = Len + 4}};
split(Partial, _Max, F, Acc) ->
    {ok, lists:reverse(Acc),
     F#framer{chunks = [Partial], size = byte_size(Partial), need = undefined}}.
