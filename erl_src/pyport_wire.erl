%% The wire protocol between the Erlang side and the port, in one place.
%%
%% Every packet either side sends is built or recognised here, and the
%% protocol version is named here only: adding a message kind means one
%% encoder or one decode clause in this module (and its row in the docs).
%% Packets are term_to_binary output behind a 4-byte length (the port is
%% opened in stream mode, see pyport_framer); encoders return the framed
%% packet as iodata (prefix and term, no copy) that callers hand to
%% erlang:port_command/2 themselves, so the hot path (a caller writing its
%% own task) never goes through a process.
-module(pyport_wire).

%% API.
-export([version/0]).
%% Erlang -> port.
-export([task/6]).
-export([source/4]).
-export([cancel/1]).
-export([call_reply/2]).
-export([setup/2]).
-export([setup/3]).
-export([obj_release/1]).
-export([stop/0]).
-export([log_level/1]).
-export([payload_size/1]).
%% Erlang -> port, actors (py_actor).
-export([actor_start/6]).
-export([actor_msg/2]).
%% Erlang -> port, streams (docs/streams.md).
-export([stream_start/6]).
-export([stream_credit/2]).
-export([stream_cancel/1]).
%% port -> Erlang.
-export([decode/3]).

-define(VERSION, 3).

%% What decode/1 makes of a packet from the port: the packet itself when
%% it is one the protocol knows (same shape as on the wire), otherwise a
%% tag saying what is wrong with it.
-type inbound() :: {result, Id :: term(), {ok, term()} | {error, term()}
                                        | {handles, Value :: term(), Ns :: term()}}
                 | {send, CallId :: term(), Dest :: term(), Msg :: term()}
                 | {send, Dest :: term(), Msg :: term()}
                 | {call, CallId :: term(), Name :: term(), Args :: term()}
                 | {whereis, CallId :: term(), Name :: term()}
                 | {registered, CallId :: term(), Name :: term()}
                 | {call_cancel, CallId :: term()}
                 | {log, Level :: term(), Logger :: term(), Message :: term()}
                 | {output, Stream :: term(), Line :: term()}
                 | {actor_started, ActorId :: term()}
                 | {actor_ack, ActorId :: term(), Count :: term()}
                 | {actor_reply, ActorId :: term(), Token :: term(), Reply :: term()}
                 | {stream_data, Id :: term(), Items :: term()}
                 | {stream_end, Id :: term(), End :: term()}
                 | {error, {bad_packet, Reason :: term()}}
                 | {error, {unknown_message, Term :: term()}}
                 | {ready, Info :: map()}
                 | {protocol_mismatch, Info :: term()}
                 | {start_failed, Reason :: term()}
                 | {unexpected, term()}.
%% A framed packet for the port: the length prefix, then the term.
-type packet() :: [binary(), ...].
%% What decode/3 makes of a frame: a packet; one refused for the atoms it
%% would create (with the task id when it is a result, so that its caller
%% can be told); or a frame that means the stream cannot be trusted.
-type decoded() :: {ok, inbound(), AtomsCreated :: non_neg_integer()}
                 | {refused, {atom_limit, pos_integer(), pyport_term:budget()},
                    {ok, Id :: term()} | error}
                 | {broken, compressed | malformed
                          | {too_large, non_neg_integer(), pos_integer()}}.
-export_type([inbound/0, packet/0, decoded/0]).

%% API.

%% The version the port announces in its `ready` packet.
-spec version() -> pos_integer().
version() ->
    ?VERSION.

%% `{task, Id, Module, Func, Args, Kwargs, Opts}`: run Module.Func(*Args,
%% **Kwargs) and reply `{result, Id, _}` (unless Opts says reply => false).
-spec task(term(), term(), term(), list(), map(), map()) -> packet().
task(Id, Module, Func, Args, Kwargs, Opts) ->
    frame({task, Id, Module, Func, Args, Kwargs, Opts}).

%% `{exec | eval, Id, Code, Opts}`: source text run in `__main__`.
-spec source(exec | eval, term(), binary(), map()) -> packet().
source(Kind, Id, Code, Opts) when Kind =:= exec; Kind =:= eval ->
    frame({Kind, Id, Code, Opts}).

-spec cancel(term()) -> packet().
cancel(Id) ->
    frame({cancel, Id}).

%% The answer to a Python `erlang.call`, `send` or `whereis`.
-spec call_reply(term(), {ok, term()} | {error, term()}) -> packet().
call_reply(CallId, Reply) ->
    frame({call_reply, CallId, Reply}).

%% Sent once, right after `ready`: what `erlang.self()` is outside a task.
-spec setup(pid(), pyport_task:loop_index()) -> packet().
setup(Worker, Index) ->
    frame({setup, #{worker => Worker, loop => Index}}).

%% setup/2 with more keys (pyport_handle's incarnation and limit).
-spec setup(pid(), pyport_task:loop_index(), map()) -> packet().
setup(Worker, Index, Extra) ->
    frame({setup, Extra#{worker => Worker, loop => Index}}).

%% `{obj_release, [N]}`: the port drops these handles (docs/handles.md).
-spec obj_release([pos_integer()]) -> packet().
obj_release(Numbers) ->
    frame({obj_release, Numbers}).

-spec stop() -> packet().
stop() ->
    frame(stop).

%% `{actor_start, Id, Module, Func, Args, Kwargs, Opts}`: run the
%% coroutine (or GenServer) Module.Func(*Args, **Kwargs) as actor Id; it
%% answers `{actor_started, Id}`, then one `{result, Id, _}` when it ends.
-spec actor_start(term(), term(), term(), list(), map(), map()) -> packet().
actor_start(Id, Module, Func, Args, Kwargs, Opts) ->
    frame({actor_start, Id, Module, Func, Args, Kwargs, Opts}).

%% `{actor_msg, Id, Msg}`: the next message of actor Id's mailbox.
-spec actor_msg(term(), term()) -> packet().
actor_msg(Id, Msg) ->
    frame({actor_msg, Id, Msg}).
%% `{stream_start, Id, Module, Func, Args, Kwargs, Opts}`: run
%% Module.Func(*Args, **Kwargs) and stream what it returns, at most
%% `window` (in Opts) items before the first `stream_credit`.
-spec stream_start(term(), term(), term(), list(), map(), map()) -> packet().
stream_start(Id, Module, Func, Args, Kwargs, Opts) ->
    frame({stream_start, Id, Module, Func, Args, Kwargs, Opts}).

%% `{stream_credit, Id, N}`: the consumer takes N more items.
-spec stream_credit(term(), pos_integer()) -> packet().
stream_credit(Id, N) ->
    frame({stream_credit, Id, N}).

%% `{stream_cancel, Id}`: close the stream's generator.
-spec stream_cancel(term()) -> packet().
stream_cancel(Id) ->
    frame({stream_cancel, Id}).
%% `{log_level, Level}`: the OTP logger's primary level changed; a port
%% whose python_log_level is unset follows it (docs/operations.md).
-spec log_level(logger:level() | all | none) -> packet().
log_level(Level) when is_atom(Level) ->
    frame({log_level, Level}).

%% The size of a packet's term, what the port's `max_packet` bounds.
-spec payload_size(packet()) -> non_neg_integer().
payload_size([<<Size:32>> | _]) ->
    Size.

%% Recognises one frame from the port, untrusted (pyport_term): no frame
%% over MaxPacket, no compressed term, and at most AtomsLeft new atoms.
%% Results come first in classify/1: they are nearly all the traffic, and
%% are returned as decoded, without a copy.
-spec decode(binary(), pos_integer(), pyport_term:budget()) -> decoded().
decode(Bin, MaxPacket, AtomsLeft) ->
    case pyport_term:decode(Bin, MaxPacket, AtomsLeft) of
        {ok, Term, Created} -> {ok, classify(Term), Created};
        {error, {atom_limit, _, _} = Reason} -> {refused, Reason, pyport_term:result_id(Bin)};
        {error, Reason} -> {broken, Reason}
    end.

%% Internal.

%% term_to_iovec/1 rather than term_to_binary/1: a large binary in the
%% term (a 1 MiB argument) is referenced by the packet, not copied into
%% it; the port driver writes the pieces with one writev.
frame(Term) ->
    case erlang:term_to_iovec(Term) of
        [Bin] -> [<<(byte_size(Bin)):32>>, Bin];
        IoV -> [<<(iolist_size(IoV)):32>> | IoV]
    end.

classify({result, _, _} = Result) -> Result;
classify({send, _, _, _} = Send) -> Send;
classify({send, _, _} = Send) -> Send;
classify({call, _, _, _} = Call) -> Call;
classify({whereis, _, _} = Whereis) -> Whereis;
classify({registered, _, _} = Registered) -> Registered;
classify({call_cancel, _} = Cancel) -> Cancel;
classify({log, _, _, _} = Log) -> Log;
classify({output, _, _} = Output) -> Output;
classify({actor_started, _} = Started) -> Started;
classify({actor_ack, _, _} = Ack) -> Ack;
classify({actor_reply, _, _, _} = Reply) -> Reply;
classify({stream_data, _, _} = Data) -> Data;
classify({stream_end, _, _} = End) -> End;
classify({error, {bad_packet, _}} = Error) -> Error;
classify({error, {unknown_message, _}} = Error) -> Error;
classify({ready, #{protocol := ?VERSION} = Info}) -> {ready, Info};
classify({ready, Info}) -> {protocol_mismatch, Info};
classify({start_failed, _} = Failed) -> Failed;
classify(Other) -> {unexpected, Other}.
