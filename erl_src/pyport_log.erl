%% What Python says outside of results, rendered on the Erlang side:
%% records of Python's `logging` (`{log, Level, Logger, Message}` packets)
%% go to the OTP logger, and lines written to fds 1 and 2 (`{output,
%% Stream, Line}` packets, or the start-up stderr file) go to the OTP logger
%% or the node's standard_error, each tagged with its loop; so do reports
%% of packets that went wrong on the way.
%%
%% Everything here comes from the port, which task code controls: every
%% line is bounded (a record or output line to ?MAX_TEXT bytes, a report
%% of a bad packet to a few hundred), so that a hostile frame cannot put
%% megabytes into the log.
-module(pyport_log).

%% API.
-behaviour(pyport_route).

-export([record/4]).
-export([output/4]).
-export([protocol_fault/2]).
-export([atoms_refused/5]).
-export([bad_output/4]).
-export([bounded/1]).
-export([truncate/2]).
%% pyport_route: Python's log records and output lines.
-export([tags/0]).
-export([route/2]).

%% The longest text of a Python log record or output line.
-define(MAX_TEXT, 65536).
%% The longest rendering of a term from a bad packet, and its depth.
-define(MAX_TERM, 300).
-define(TERM_DEPTH, 12).

%% API.

-spec tags() -> [atom()].
tags() ->
    [log, output].

-spec route(tuple(), pyport_route:context()) -> ok | malformed.
route({log, Level, Logger, Message}, #{index := Index}) ->
    record(Level, Logger, Message, Index);
route({output, Stream, Line}, #{index := Index, output := Mode}) ->
    output(Stream, Line, Index, Mode);
route(_, _) ->
    malformed.

%% A Python logging record from loop Index.
-spec record(term(), term(), term(), pyport_task:loop_index()) -> ok.
record(Level, Logger, Message, Index) ->
    Meta = #{pyport_loop => Index, python_logger => Logger},
    case unicode:characters_to_binary(Message) of
        Text when is_binary(Text) ->
            logger:log(level(Level), "~ts", [truncate(Text, ?MAX_TEXT)], Meta);
        _ ->
            logger:log(level(Level), "~ts", [bounded(Message)], Meta)
    end.

%% A line Python (or C code in the port) wrote to fd 1 or 2, sent where
%% the loop's `output` setting says.
-spec output(term(), term(), pyport_task:loop_index(), pyport_config:output()) -> ok.
output(Stream, Line, Index, logger) ->
    Level = case Stream of
                stderr -> warning;
                _ -> info
            end,
    Meta = #{pyport_loop => Index, pyport_stream => Stream,
             python_logger => atom_to_binary(stream(Stream), utf8)},
    logger:log(Level, "~ts", [truncate(text(Line), ?MAX_TEXT)], Meta);
output(Stream, Line, Index, stderr) ->
    io:put_chars(standard_error,
                 [io_lib:format("[pyport ~p ~s] ", [Index, stream(Stream)]),
                  truncate(text(Line), ?MAX_TEXT), $\n]).

%% A packet the port answered with an error (one it could not decode or
%% did not understand), or one from the port that was not expected.
-spec protocol_fault(pyport_wire:inbound(), pyport_task:loop_index()) -> ok.
protocol_fault({error, {bad_packet, Reason}}, Index) ->
    logger:warning("pyport loop ~p could not decode a packet (bad_packet): ~ts",
                   [Index, bounded(Reason)], #{pyport_loop => Index});
protocol_fault({error, {unknown_message, Term}}, Index) ->
    logger:warning("pyport loop ~p did not understand a message "
                   "(unknown_message): ~ts",
                   [Index, bounded(Term)], #{pyport_loop => Index});
protocol_fault(Packet, Index) ->
    What = case Packet of
               {unexpected, Term} -> Term;
               _ -> Packet
           end,
    logger:warning("pyport loop ~p sent an unexpected packet: ~ts",
                   [Index, bounded(What)], #{pyport_loop => Index}).

%% A frame refused for the atoms it would create (Reason from
%% pyport_term), the Count-th of the loop; Routed: it was a result, and
%% its caller got the error.
-spec atoms_refused(term(), boolean(), binary(), pos_integer(), pyport_task:loop_index()) -> ok.
atoms_refused(Reason, Routed, Frame, Count, Index) ->
    logger:warning("pyport loop ~p: a packet of ~b bytes would exceed the "
                   "loop's atom budget (~ts, refused packet ~b); ~ts; it starts ~ts",
                   [Index, byte_size(Frame), bounded(Reason), Count,
                    case Routed of
                        true -> "its task gets {error, {atom_limit, Max}}";
                        false -> "dropped"
                    end,
                    bounded(binary:part(Frame, 0, min(64, byte_size(Frame))))],
                   #{pyport_loop => Index}).

%% The port's output cannot be framed or decoded (Reason), and the port is
%% killed; Buffered bytes of an incomplete frame were held.
-spec bad_output(term(), non_neg_integer(), term(), pyport_task:loop_index()) -> ok.
bad_output(Reason, Buffered, OsPid, Index) ->
    logger:error("pyport loop ~p (OS pid ~ts) wrote output that is not a "
                 "valid packet (~ts, ~b bytes buffered); killing the port",
                 [Index, bounded(OsPid), bounded(Reason), Buffered],
                 #{pyport_loop => Index}).

%% Term printed on one line, at most ?MAX_TERM bytes (and ?TERM_DEPTH deep,
%% so that rendering a huge term costs little).
-spec bounded(term()) -> binary().
bounded(Term) ->
    Text = io_lib:format("~0tP", [Term, ?TERM_DEPTH]),
    Bin = case unicode:characters_to_binary(Text) of
              B when is_binary(B) -> B;
              _ -> iolist_to_binary(io_lib:format("~0P", [Term, ?TERM_DEPTH]))
          end,
    truncate(Bin, ?MAX_TERM).

%% Text cut to at most Max bytes (on a character boundary), saying how
%% much was left out.
-spec truncate(binary(), non_neg_integer()) -> binary().
truncate(Text, Max) when byte_size(Text) =< Max ->
    Text;
truncate(Text, Max) ->
    Kept = utf8_prefix(binary:part(Text, 0, Max)),
    <<Kept/binary, "... (", (integer_to_binary(byte_size(Text) - byte_size(Kept)))/binary,
      " more bytes)">>.

%% Internal.

%% Drops a UTF-8 sequence cut in the middle (at most 3 bytes).
utf8_prefix(Bin) ->
    utf8_prefix(Bin, 0).

utf8_prefix(Bin, Dropped) when Dropped =< 3 ->
    case unicode:characters_to_binary(Bin) of
        B when is_binary(B) -> Bin;
        _ when byte_size(Bin) > 0 ->
            utf8_prefix(binary:part(Bin, 0, byte_size(Bin) - 1), Dropped + 1);
        _ -> Bin
    end;
utf8_prefix(Bin, _) ->
    Bin.

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
