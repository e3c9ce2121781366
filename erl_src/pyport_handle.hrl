%% An object handle: a Python object kept in loop `loop`'s port, number
%% `id` of that port's handle table. `incarnation` is made by the loop's
%% worker when its port starts, so a handle of a port that has since
%% restarted never names an object of the fresh one (docs/handles.md).
%% Built by the Erlang side only (pyport_handle); treat it as opaque.
-record(py_obj, {
    loop :: pyport_task:loop_index(),
    incarnation :: reference(),
    id :: pos_integer()
}).
