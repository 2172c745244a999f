"""What flowc compiles and into what: the parsed document, the IR, the plan, the node view and the catalog.

Nothing here runs a pass, knows a deployment target or touches the machine.
"""
