echo "file:{{ ds_nodash }}:{{ params.who }}:{{ macros.ds_add(ds, 1) }}"
