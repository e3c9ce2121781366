%% The wire protocol between the Erlang side and the port, in one place.
%%
%% Every packet either side sends is built or recognised here, and the
%% protocol version is named here only: adding a message kind means one
%% encoder or one decode clause in this module (and its row in the docs).
%% Packets are `{packet, 4}` frames of term_to_binary output; encoders return
%% the binary that callers hand to erlang:port_command/2 themselves, so the
%% hot path (a caller writing its own task) never goes through a process.
-module(pyport_wire).

%% API.
-export([version/0]).
%% Erlang -> port.
-export([task/6]).
-export([source/4]).
-export([cancel/1]).
-export([call_reply/2]).
-export([setup/2]).
-export([stop/0]).
%% port -> Erlang.
-export([decode/1]).

-define(VERSION, 1).

%% What decode/1 makes of a packet from the port: the packet itself when
%% it is one the protocol knows (same shape as on the wire), otherwise a
%% tag saying what is wrong with it.
-type inbound() :: {result, Id :: term(), {ok, term()} | {error, term()}}
                 | {send, CallId :: term(), Dest :: term(), Msg :: term()}
                 | {send, Dest :: term(), Msg :: term()}
                 | {call, CallId :: term(), Name :: term(), Args :: term()}
                 | {whereis, CallId :: term(), Name :: term()}
                 | {log, Level :: term(), Logger :: term(), Message :: term()}
                 | {output, Stream :: term(), Line :: term()}
                 | {error, {bad_packet, Reason :: term()}}
                 | {error, {unknown_message, Term :: term()}}
                 | {ready, Info :: map()}
                 | {protocol_mismatch, Info :: term()}
                 | {start_failed, Reason :: term()}
                 | {undecodable, binary()}
                 | {unexpected, term()}.
-export_type([inbound/0]).

%% API.

%% The version the port announces in its `ready` packet.
-spec version() -> pos_integer().
version() ->
    ?VERSION.

%% `{task, Id, Module, Func, Args, Kwargs, Opts}`: run Module.Func(*Args,
%% **Kwargs) and reply `{result, Id, _}` (unless Opts says reply => false).
-spec task(term(), term(), term(), list(), map(), map()) -> binary().
task(Id, Module, Func, Args, Kwargs, Opts) ->
    term_to_binary({task, Id, Module, Func, Args, Kwargs, Opts}).

%% `{exec | eval, Id, Code, Opts}`: source text run in `__main__`.
-spec source(exec | eval, term(), binary(), map()) -> binary().
source(Kind, Id, Code, Opts) when Kind =:= exec; Kind =:= eval ->
    term_to_binary({Kind, Id, Code, Opts}).

-spec cancel(term()) -> binary().
cancel(Id) ->
    term_to_binary({cancel, Id}).

%% The answer to a Python `erlang.call`, `send` or `whereis`.
-spec call_reply(term(), {ok, term()} | {error, term()}) -> binary().
call_reply(CallId, Reply) ->
    term_to_binary({call_reply, CallId, Reply}).

%% Sent once, right after `ready`: what `erlang.self()` is outside a task.
-spec setup(pid(), pos_integer()) -> binary().
setup(Worker, Index) ->
    term_to_binary({setup, #{worker => Worker, loop => Index}}).

-spec stop() -> binary().
stop() ->
    term_to_binary(stop).

%% Recognises a packet from the port. Results come first: they are nearly
%% all the traffic, and are returned as decoded, without a copy.
-spec decode(binary()) -> inbound().
decode(Bin) ->
    try binary_to_term(Bin) of
        Term -> classify(Term)
    catch
        error:badarg -> {undecodable, Bin}
    end.

%% Internal.

classify({result, _, _} = Result) -> Result;
classify({send, _, _, _} = Send) -> Send;
classify({send, _, _} = Send) -> Send;
classify({call, _, _, _} = Call) -> Call;
classify({whereis, _, _} = Whereis) -> Whereis;
classify({log, _, _, _} = Log) -> Log;
classify({output, _, _} = Output) -> Output;
classify({error, {bad_packet, _}} = Error) -> Error;
classify({error, {unknown_message, _}} = Error) -> Error;
classify({ready, #{protocol := ?VERSION} = Info}) -> {ready, Info};
classify({ready, Info}) -> {protocol_mismatch, Info};
classify({start_failed, _} = Failed) -> Failed;
classify(Other) -> {unexpected, Other}.
