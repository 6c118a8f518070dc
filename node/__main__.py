from node.participant import main

raise SystemExit(main())
