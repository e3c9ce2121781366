%% How a loop's worker hands the packets Python sends to the modules that
%% handle them: each such module implements this behaviour, names the
%% packet tags it takes, and is listed once in the worker's route table
%% (pyport_worker's ?ROUTES), so that a new kind of packet is a new
%% module there, not another clause of the worker.
%%
%% A route runs in the worker, on packets decoded as untrusted input
%% (pyport_wire): it checks their fields and returns `malformed` for one
%% it cannot take, which the worker logs as a protocol fault. It must
%% never block: writes to the port go through pyport_calls:send/2.
-module(pyport_route).

%% API.
-export([table/1]).
-export([route/3]).

%% What every route gets besides the packet: the loop (pyport_calls owns
%% its tables), its id, its settings a route needs.
-type context() :: #{index := pyport_calls:loop_index(),
                     loop := pyport_calls:loop(),
                     port := port(),
                     max_packet := pos_integer(),
                     output := pyport_config:output(),
                     send_policy := py_callback:send_policy(),
                     callbacks := pyport_callback_runs:runs()}.
-type table() :: #{atom() => module()}.
-export_type([context/0, table/0]).

%% The packet tags the module routes.
-callback tags() -> [atom()].
%% Handles one packet whose first element is one of tags().
-callback route(Packet :: tuple(), context()) -> ok | malformed.

%% API.

%% The route table of Modules; a tag claimed twice is a programming error.
-spec table([module()]) -> table().
table(Modules) ->
    lists:foldl(fun(Module, Table) ->
                        lists:foldl(fun(Tag, T) when not is_map_key(Tag, T) ->
                                            T#{Tag => Module}
                                    end, Table, Module:tags())
                end, #{}, Modules).

%% Routes Packet by its tag; `unknown` for a packet no module takes.
-spec route(term(), table(), context()) -> ok | malformed | unknown.
route(Packet, Table, Context) when is_tuple(Packet), tuple_size(Packet) > 0 ->
    case Table of
        #{element(1, Packet) := Module} -> Module:route(Packet, Context);
        _ -> unknown
    end;
route(_, _, _) ->
    unknown.
