"""Variables, Connections and XCom as a task and an operator see them, behind the metadata DB."""
