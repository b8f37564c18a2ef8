module rampartfleet

go 1.19
