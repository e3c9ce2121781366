%% What Python says outside of results, rendered on the Erlang side:
%% records of Python's `logging` (`{log, Level, Logger, Message}` packets)
%% go to the OTP logger, and lines written to fds 1 and 2 (`{output,
%% Stream, Line}` packets, or the start-up stderr file) go to the OTP logger
%% or the node's standard_error, each tagged with its loop; so do reports
%% of packets that went wrong on the way.
-module(pyport_log).

%% API.
-export([record/4]).
-export([output/4]).
-export([protocol_fault/2]).

%% API.

%% A Python logging record from loop Index.
-spec record(term(), term(), term(), pos_integer()) -> ok.
record(Level, Logger, Message, Index) ->
    Meta = #{pyport_loop => Index, python_logger => Logger},
    case unicode:characters_to_binary(Message) of
        Text when is_binary(Text) ->
            logger:log(level(Level), "~ts", [Text], Meta);
        _ ->
            logger:log(level(Level), "~tp", [Message], Meta)
    end.

%% A line Python (or C code in the port) wrote to fd 1 or 2, sent where
%% the loop's `output` setting says.
-spec output(term(), term(), pos_integer(), pyport_config:output()) -> ok.
output(Stream, Line, Index, logger) ->
    Level = case Stream of
                stderr -> warning;
                _ -> info
            end,
    Meta = #{pyport_loop => Index, pyport_stream => Stream,
             python_logger => atom_to_binary(stream(Stream), utf8)},
    logger:log(Level, "~ts", [text(Line)], Meta);
output(Stream, Line, Index, stderr) ->
    io:put_chars(standard_error,
                 [io_lib:format("[pyport ~b ~s] ", [Index, stream(Stream)]),
                  text(Line), $\n]).

%% A packet the port answered with an error (one it could not decode or
%% did not understand), or one from the port that was not expected.
-spec protocol_fault(pyport_wire:inbound(), pos_integer()) -> ok.
protocol_fault({error, {bad_packet, Reason}}, Index) ->
    logger:warning("pyport loop ~b could not decode a packet (bad_packet): ~tp",
                   [Index, Reason], #{pyport_loop => Index});
protocol_fault({error, {unknown_message, Term}}, Index) ->
    logger:warning("pyport loop ~b did not understand a message "
                   "(unknown_message): ~tp",
                   [Index, Term], #{pyport_loop => Index});
protocol_fault(Packet, Index) ->
    What = case Packet of
               {unexpected, Term} -> Term;
               _ -> Packet
           end,
    logger:warning("pyport loop ~b sent an unexpected packet: ~tp",
                   [Index, What], #{pyport_loop => Index}).

%% Internal.

stream(Stream) when is_atom(Stream) -> Stream;
stream(_) -> unknown.

%% Output is bytes: UTF-8 when it is, Latin-1 otherwise, never a crash.
text(Line) when is_binary(Line) ->
    case unicode:characters_to_binary(Line) of
        Text when is_binary(Text) -> Text;
        _ -> unicode:characters_to_binary(Line, latin1)
    end;
text(Other) ->
    iolist_to_binary(io_lib:format("~tp", [Other])).

%% Python's level names, and anything unexpected, mapped onto the OTP
%% logger's levels.
level(Level) when is_binary(Level) ->
    level(string:lowercase(Level));
level(Level) when Level =:= emergency; Level =:= alert; Level =:= critical;
                  Level =:= error; Level =:= warning; Level =:= notice;
                  Level =:= info; Level =:= debug ->
    Level;
level(<<"critical">>) -> critical;
level(<<"fatal">>) -> critical;
level(<<"error">>) -> error;
level(<<"warning">>) -> warning;
level(<<"warn">>) -> warning;
level(<<"info">>) -> info;
level(<<"debug">>) -> debug;
level(fatal) -> critical;
level(warn) -> warning;
level(_) -> notice.
